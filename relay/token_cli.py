"""`bridgehead-relay token create | list | revoke`: one-time enrollment tokens.

`create` prints the token alone on stdout (so it can be piped or captured) and nothing else;
`list` shows every token not long ended, with its state; `revoke` cancels a pending one.
These work on the relay's state folder and need no running relay.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

from bridgehead.common.commands import UsageError
from bridgehead.common.config.durations import parse_duration
from bridgehead.relay.config import RelayConfig
from bridgehead.relay.enrollment import create_token
from bridgehead.relay.tokens import TokenRefused, TokenStore, utc_now


def add_token_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("token", help="one-time enrollment tokens for agents")
    token_sub = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="print a token that enrolls one agent")
    create.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    create.add_argument("--agent", required=True, metavar="ID", help="the agent's id")
    create.add_argument("--group", metavar="G", help="the agent's group")
    create.add_argument("--ttl", metavar="DURATION", help="how long it stays usable (1h)")
    listing = token_sub.add_parser("list", help="tokens not yet long ended, with their state")
    listing.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    listing.add_argument("--json", action="store_true", help="print JSON, not a table")
    revoking = token_sub.add_parser("revoke", help="cancel a pending token")
    revoking.add_argument("token_id", metavar="ID")
    revoking.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")


def token_command(config: RelayConfig, args: argparse.Namespace) -> int:
    now = utc_now()
    try:
        if args.action == "create":
            ttl = _ttl(args.ttl, config)
            print(create_token(config, args.agent, args.group, ttl, now=now))
        elif args.action == "revoke":
            entry = TokenStore(config.state_path).revoke(args.token_id, now)
            print(f"token {entry.id} for agent {entry.agent} revoked")
        else:
            _list(TokenStore(config.state_path), args.json)
    except (TokenRefused, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def _ttl(text: str | None, config: RelayConfig) -> timedelta:
    if text is None:
        return timedelta(seconds=config.enrollment.token_ttl)
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from None


def _list(store: TokenStore, as_json: bool) -> None:
    now = utc_now()
    rows = [
        {"id": e.id, "agent": e.agent, "group": e.group, "expires": e.expires,
         "state": e.state(now)}
        for e in store.entries(now)
    ]  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'ID':<17} {'AGENT':<20} {'GROUP':<16} {'STATE':<8} EXPIRES")
    for row in rows:
        print(f"{row['id']:<17} {row['agent']:<20} {row['group'] or '-':<16} "
              f"{row['state']:<8} {row['expires']}")  # fmt: skip
