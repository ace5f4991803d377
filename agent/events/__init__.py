"""Change events: capture from the legacy database, the agent's event log, delivery."""
