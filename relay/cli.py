"""The `bridgehead-relay` command line: run the relay, create its CA, make enrollment
tokens, list and revoke agents, look after webhook deliveries.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error; errors are one sentence.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bridgehead.certs.pki import create_ca, issue_server_cert, write_key_pair
from bridgehead.common import logs
from bridgehead.common.commands import Failure, UsageError, load_config_or_refuse, serve
from bridgehead.relay.admin_client import format_agents, list_agents, revoke
from bridgehead.relay.app import Relay
from bridgehead.relay.config import RelayConfig, load_relay_config
from bridgehead.relay.service_cli import service_command
from bridgehead.relay.token_cli import add_token_commands, token_command
from bridgehead.relay.webhooks.cli import add_webhook_commands, webhooks_command


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="bridgehead-relay", description="The Bridgehead relay.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the relay in the foreground")
    run.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    ca = sub.add_parser("ca", help="the agents' certificate authority")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    init = ca_sub.add_parser("init", help="create the CA and the relay's server certificate")
    init.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    init.add_argument("--san", action="append", default=[], help="DNS name or IP (repeatable)")
    add_token_commands(sub)
    add_webhook_commands(sub)
    service = sub.add_parser("service", help="run the relay as a systemd service")
    service.add_argument("action", choices=["install", "uninstall", "status"])
    service.add_argument("-c", "--config", type=Path, help="relay.yaml (/etc/bridgehead-relay/)")
    service.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    service.add_argument("--purge", action="store_true", help="uninstall: remove config, state")
    agents = sub.add_parser("agents", help="the agents: who is connected, revocation")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    listing = agents_sub.add_parser("list", help="the agents connected to the running relay")
    listing.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    listing.add_argument("--json", action="store_true", help="print JSON, not a table")
    revoking = agents_sub.add_parser("revoke", help="refuse an agent's certificates from now on")
    revoking.add_argument("agent_id", metavar="ID")
    revoking.add_argument(
        "--serial", metavar="S", help="revoke only this certificate (hex serial, as logged)"
    )
    revoking.add_argument("-c", "--config", type=Path, required=True, help="relay.yaml")
    return top


def load(path: Path) -> RelayConfig:
    return load_config_or_refuse(load_relay_config, path)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    logs.apply(config.logging)
    serve([Relay(config, config_file=args.config)])
    return 0


def ca_init(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config.ca.key is None:
        raise UsageError("ca.key is not set in the config; add ca: {cert: ..., key: ...}")
    for existing in (config.ca.cert, config.ca.key, config.tls.cert, config.tls.key):
        if existing.exists():
            raise UsageError(f"{existing} already exists; move it away to create a new CA")
    names = args.san or ["localhost", "127.0.0.1"]
    ca_cert, ca_key = create_ca()
    write_key_pair(config.ca.cert, config.ca.key, ca_cert, ca_key)
    write_key_pair(config.tls.cert, config.tls.key, *issue_server_cert(ca_cert, ca_key, names))
    print(f"created the CA ({config.ca.cert}) and the relay certificate for {', '.join(names)}")
    return 0


def agents(args: argparse.Namespace) -> int:
    config = load(args.config)
    if args.agents_command == "revoke":
        print(revoke(config, args.agent_id, args.serial))
        return 0
    connected = list_agents(config)
    print(json.dumps(connected, indent=2) if args.json else format_agents(connected))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": run,
    "ca": ca_init,
    "agents": agents,
    "token": lambda args: token_command(load(args.config), args),
    "webhooks": lambda args: webhooks_command(load(args.config), args),
    "service": lambda args: service_command(
        args.action, args.config, args.dry_run, args.purge, sys.stdout
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"bridgehead-relay: {exc}", file=sys.stderr)
        return 2
    except (Failure, OSError, ValueError) as exc:
        print(f"bridgehead-relay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main())
