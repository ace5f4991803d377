"""Scheduled batch jobs: import and export, checkpointed, with reconciliation reports."""
