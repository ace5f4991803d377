"""What a config reload (SIGHUP) may change while the agent runs, and what needs a restart.

Applied for the next request: resources, queries, procedures, API keys and JWT settings, and
the request and write limits. Everything that owns a socket, a file or a pool — sources,
listeners, the tunnel, the state folder, the idempotency store, the listener's connection
limits — needs a restart; a reload that changes any of it is refused whole, so the running
agent never serves half of one config and half of another.
"""

from __future__ import annotations

from bridgehead.agent.config.model import AgentConfig, LimitsConfig

RELOADABLE = frozenset({"resources", "queries", "procedures", "auth", "limits"})
RELOADABLE_LIMITS = frozenset({
    "requests_per_second", "burst", "max_write_rows", "max_bulk_rows", "failed_auth_burst",
    "failed_auth_per_second",
})  # fmt: skip


def needs_restart(running: AgentConfig, new: AgentConfig) -> list[str]:
    """The settings that differ between `running` and `new` and cannot change in place."""
    changed = [
        name for name in type(running).model_fields
        if name not in RELOADABLE and getattr(running, name) != getattr(new, name)
    ]  # fmt: skip
    changed += [
        f"limits.{name}" for name in LimitsConfig.model_fields
        if name not in RELOADABLE_LIMITS
        and getattr(running.limits, name) != getattr(new.limits, name)
    ]  # fmt: skip
    return changed
