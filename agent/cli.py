"""The `bridgehead` command line: parse arguments, run a command, map failures to exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. Errors are one plain sentence
on stderr, never a traceback; output into a closed pipe ends the command quietly (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bridgehead.agent import commands
from bridgehead.common.commands import Failure, UsageError

EXIT_FAILURE, EXIT_USAGE = 1, 2


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run a sample database behind a local agent")
    demo.add_argument("action", nargs="?", choices=["run", "change"], default="run",
                      help="run the demo (default), or change rows of its database")  # fmt: skip
    demo.add_argument("--rows", type=int, default=3, help="change: how many customers to change")
    demo.add_argument("--dir", type=Path, default=Path("bridgehead-demo"), help="demo folder")
    demo.add_argument("--port", type=int, default=8470, help="local API port (0: any free)")
    demo.add_argument(
        "--relay-port", type=int, default=8444, help="the demo relay's caller port (0: any free)"
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bridgehead", description="Serve legacy databases as authenticated HTTP APIs."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the agent in the foreground")
    run.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    check = sub.add_parser("check", help="validate the config and probe every source")
    check.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    _add_demo(sub)
    init = sub.add_parser("init", help="write a starter config from a live database")
    where = init.add_mutually_exclusive_group(required=True)
    where.add_argument("--odbc", metavar="CONN", help="an ODBC connection string")
    where.add_argument("--sqlite", type=Path, metavar="FILE", help="a SQLite database file")
    init.add_argument("-o", "--output", type=Path, default=Path("agent.yaml"), help="agent.yaml")
    init.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only tables matching (schema.name or name; * and ?), repeatable",
    )
    init.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave out tables matching, repeatable",
    )
    diag = sub.add_parser("diag", help="write a support bundle (zip) with no secrets in it")
    diag.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    diag.add_argument(
        "-o", "--output", type=Path, help="the zip (default: bridgehead-diag-TIMESTAMP.zip here)"
    )
    enroll = sub.add_parser("enroll", help="get this agent's certificate with a relay's token")
    enroll.add_argument("token", metavar="TOKEN", help="from `bridgehead-relay token create`")
    enroll.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    service = sub.add_parser("service", help="run the agent as a system service")
    service.add_argument("action", choices=["install", "uninstall", "status"])
    service.add_argument("-c", "--config", type=Path, help="agent.yaml (/etc/bridgehead/...)")
    service.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    service.add_argument("--purge", action="store_true", help="uninstall: remove config, state")
    service.add_argument(
        "--account", help=r"Windows: run as this account, password on stdin (NT SERVICE\Bridgehead)"
    )
    service.add_argument(  # the plan of another platform, for --dry-run and the tests
        "--platform", choices=["linux", "windows"], help=argparse.SUPPRESS
    )
    secret = sub.add_parser("secret", help="encrypt a secret for the config")
    secret_sub = secret.add_subparsers(dest="secret_command", required=True, metavar="ACTION")
    encrypt = secret_sub.add_parser("encrypt", help="read a secret on stdin, print its enc: value")
    encrypt.add_argument("-c", "--config", type=Path, help="agent.yaml (where the key is kept)")
    jobs = sub.add_parser("jobs", help="scheduled batch jobs: list, history, run one now")
    jobs.add_argument("action", choices=["list", "history", "run"])
    jobs.add_argument("name", nargs="?", help="the job (history, run)")
    jobs.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    jobs.add_argument("--dry-run", action="store_true", help="run: count, send nothing")
    events = sub.add_parser(
        "events", help="change capture: install or remove the triggers or change tracking"
    )
    events.add_argument("action", choices=["install", "uninstall"])
    events.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    events.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="NAME",
        help="only this resource, repeatable (default: every one with events:)",
    )
    events.add_argument("--yes", action="store_true", help="run the statements (else: print)")
    events.add_argument(
        "--drop-outbox", action="store_true", help="uninstall: drop the outbox table too"
    )
    events.add_argument(
        "--disable-database-tracking",
        action="store_true",
        help="uninstall: turn SQL Server change tracking off for the database too",
    )
    audit = sub.add_parser("audit", help="work with the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="check the audit log's hash chain")
    verify.add_argument("file", type=Path, help="an audit log file (state/audit.log)")
    return top


# Each command imports its own module when it runs (PLC0415 below): `bridgehead run` then
# never loads what only `init`, `service`, `secret`, `audit`, `events` or `jobs` use.


def _init(args: argparse.Namespace) -> int:
    from bridgehead.agent.starter_cli import init_command  # noqa: PLC0415 - see above

    return init_command(
        args.odbc, args.sqlite, args.output, (args.include, args.exclude), sys.stdout
    )


def _service(args: argparse.Namespace) -> int:
    from bridgehead.agent.service_cli import service_command  # noqa: PLC0415 - see above

    return service_command(
        args.action,
        args.config,
        args.dry_run,
        args.purge,
        sys.stdout,
        platform=args.platform,
        account=args.account,
    )


def _secret(args: argparse.Namespace) -> int:
    from bridgehead.agent.secret_cli import encrypt_command  # noqa: PLC0415 - see above

    return encrypt_command(args.config, sys.stdin, sys.stdout, sys.stderr)


def _audit(args: argparse.Namespace) -> int:
    from bridgehead.agent.audit_cli import verify_command  # noqa: PLC0415 - see above

    return verify_command(args.file, sys.stdout, sys.stderr)


def _events(args: argparse.Namespace) -> int:
    from bridgehead.agent.events_cli import events_command  # noqa: PLC0415 - see above

    return events_command(
        commands.load(args.config),
        args.action,
        args.resource,
        args.yes,
        args.drop_outbox,
        sys.stdout,
        database_tracking=args.disable_database_tracking,
    )


def _jobs(args: argparse.Namespace) -> int:
    from bridgehead.agent.jobs_cli import jobs_command  # noqa: PLC0415 - see above

    return jobs_command(
        commands.load(args.config), args.action, args.name, args.dry_run, sys.stdout
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": lambda args: commands.run(args.config),
    "check": lambda args: commands.check(args.config),
    "demo": lambda args: (
        commands.demo_change(args.dir, args.rows)
        if args.action == "change"
        else commands.demo(args.dir, args.port, args.relay_port)
    ),
    "init": _init,
    "diag": lambda args: commands.diag(args.config, args.output),
    "enroll": lambda args: commands.enroll(args.token, args.config),
    "service": _service,
    "secret": _secret,
    "audit": _audit,
    "events": _events,
    "jobs": _jobs,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so a closed pipe is seen while it can still be handled
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except UsageError as exc:
        print(f"bridgehead: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Failure as exc:
        print(f"bridgehead: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


def _reader_went_away() -> int:
    """stdout's reader closed the pipe (`bridgehead check | head -1`): stop quietly. What is
    still buffered goes to /dev/null, so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
