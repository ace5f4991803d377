"""Webhooks: the relay delivers agents' change events to subscribers' URLs."""
