"""`bridgehead-relay webhooks list | replay NAME --from SEQ [--agent ID]... | dead-letters NAME`:
the running relay's webhook deliveries, through its admin port (relay.webhooks.admin).

`list` shows each subscription and, per connected agent, the position committed, what is
undelivered, the failures and the last error; `replay` delivers again from sequence SEQ
(and enables a subscription a 410 disabled); `dead-letters` lists the events each agent
keeps as given up for the subscription, with why.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bridgehead.relay.admin_client import admin_call
from bridgehead.relay.config import RelayConfig

LIST_COLUMNS = ("WEBHOOK", "AGENT", "POSITION", "UNDELIVERED", "DELIVERED", "FAILURES", "STATE")


def add_webhook_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = sub.add_parser("webhooks", help="change-event deliveries to subscribers")
    hooks_sub = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = hooks_sub.add_parser("list", help="each subscription's deliveries per agent")
    listing.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    listing.add_argument("--json", action="store_true", help="print JSON, not a table")
    replay = hooks_sub.add_parser("replay", help="deliver again from an event's sequence")
    replay.add_argument("name", metavar="NAME")
    replay.add_argument("--from", dest="start", type=int, required=True, metavar="SEQ")
    replay.add_argument(
        "--agent", action="append", default=[], metavar="ID",
        help="only this agent (repeatable; default: every connected one)",
    )  # fmt: skip
    replay.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    dead = hooks_sub.add_parser("dead-letters", help="events given up, per agent, with why")
    dead.add_argument("name", metavar="NAME")
    dead.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    dead.add_argument("--json", action="store_true", help="print JSON, not a table")


def webhooks_command(config: RelayConfig, args: argparse.Namespace) -> int:
    if args.action == "list":
        hooks = admin_call(config, "GET", "/webhooks")["webhooks"]
        print(json.dumps(hooks, indent=2) if args.json else format_list(hooks))
    elif args.action == "replay":
        message = {"from": args.start, "agents": args.agent}
        answer = admin_call(config, "POST", f"/webhooks/{args.name}/replay", message)
        for row in answer["agents"] or [{"agent": "-", "error": "no agent is connected"}]:
            outcome = row.get("error") or f"delivering again after sequence {row['position']}"
            print(f"{args.name} {row['agent']}: {outcome}")
    else:
        agents = admin_call(config, "GET", f"/webhooks/{args.name}/consumers")["agents"]
        print(json.dumps(agents, indent=2) if args.json else format_dead(agents))
    return 0


def format_list(hooks: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [LIST_COLUMNS]
    for hook in hooks:
        state = f"disabled: {hook['disabled']}" if hook["disabled"] else "enabled"
        for agent in hook["agents"] or [{}]:
            rows.append((
                hook["name"], agent.get("agent", "-"), str(agent.get("position", "-")),
                str(agent.get("undelivered", "-")), str(agent.get("delivered", "-")),
                str(agent.get("failures", "-")),
                state if not agent.get("last_error") else f"{state}; last error: "
                f"{agent['last_error']}",
            ))  # fmt: skip
    return _table(rows)


def format_dead(agents: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [("AGENT", "SEQUENCE", "EVENT", "AT", "REASON")]
    for agent in agents:
        if "error" in agent:
            rows.append((agent["agent"], "-", "-", "-", agent["error"]))
        for dead in agent.get("dead_letters", []):
            rows.append((agent["agent"], str(dead["seq"]), dead["id"], dead["at"],
                         dead["reason"]))  # fmt: skip
    return _table(rows) if len(rows) > 1 else "no dead letters"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
