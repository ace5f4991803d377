"""What `bridgehead-relay agents list` and `agents revoke` do, from the relay's own config.

`list` asks the running relay's admin port, with the admin token from `state_dir`; `revoke`
records the revocation in `state_dir` (so it holds whether or not the relay is running),
and a running relay drops the agent's connections when it next reads the file (within a
second). `revoke ID --serial S` revokes one certificate of the agent (the hex serial the
logs print), so a stolen copy is cut off without re-enrolling the agent's group.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import orjson

from bridgehead.certs.pki import check_name
from bridgehead.common.commands import UsageError
from bridgehead.common.config.base import is_loopback
from bridgehead.relay.admin import ADMIN_TOKEN_FILE, read_admin_token
from bridgehead.relay.config import RelayConfig
from bridgehead.relay.revocations import Revocations, parse_serial

COLUMNS = ("AGENT", "GROUP", "CONNECTIONS", "SINCE", "RTT", "IN FLIGHT")


def list_agents(config: RelayConfig) -> list[dict[str, Any]]:
    """The agents connected to the running relay (raises OSError when it does not answer)."""
    agents: list[dict[str, Any]] = admin_call(config, "GET", "/agents")["agents"]
    return agents


def admin_call(
    config: RelayConfig, method: str, path: str, message: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One request to the running relay's admin port with the admin token from `state_dir`
    (raises OSError when it does not answer, or answers with a failure)."""
    if config.admin is None:
        raise UsageError("admin is off in the relay config; set admin: 127.0.0.1:9471 and restart")
    try:
        token = read_admin_token(config.state_path)
    except FileNotFoundError:
        raise UsageError(
            f"{config.state_path / ADMIN_TOKEN_FILE} does not exist; start the relay once "
            "with this config"
        ) from None
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(  # noqa: S104
        config.admin.host, config.admin.host
    )
    if not is_loopback(host):
        raise UsageError(
            f"admin is {host}, not a loopback address: the admin token would cross the network "
            "in clear; run this on the relay's machine with admin: 127.0.0.1:PORT"
        )
    url = f"http://{f'[{host}]' if ':' in host else host}:{config.admin.port}{path}"
    data = None if message is None else orjson.dumps(message)
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
    })  # fmt: skip
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with direct.open(request, timeout=30) as response:
            answer: dict[str, Any] = orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise OSError(f"the relay at {url} answered {exc.code}: {_detail(exc)}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"no relay answers at {url} ({reason}); is it running?") from None
    return answer


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        return str(orjson.loads(error.read()).get("detail", error.reason))
    except (orjson.JSONDecodeError, AttributeError, OSError):
        return str(error.reason)


def format_agents(agents: list[dict[str, Any]]) -> str:
    rows = [COLUMNS] + [
        (
            a["agent_id"],
            a["group"] or "-",
            str(a["connections"]),
            datetime.fromtimestamp(a["since"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "-" if a["rtt_ms"] is None else f"{a['rtt_ms']:.1f} ms",
            str(a["in_flight"]),
        )
        for a in agents
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def revoke(config: RelayConfig, agent_id: str, serial: str | None = None) -> str:
    """Record the revocation (of the agent, or of one of its certificates); what to tell
    the operator."""
    try:
        check_name("agent id", agent_id)
        number = None if serial is None else parse_serial(serial)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    Revocations(config.state_path).revoke(agent_id, serial=number)
    if number is not None:
        return (
            f"revoked certificate serial {number:x} of {agent_id}: it is refused at connect "
            "and at renewal, and a running relay drops the connections presenting it within "
            "a second; the agent's other certificates still work"
        )
    return (
        f"revoked {agent_id}: its certificates issued until now are refused, and a running "
        "relay drops its connections within a second; enroll it again to let it back"
    )
