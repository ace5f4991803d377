"""The agent's admin listener: health, readiness, status and Prometheus metrics."""
