"""The `bridgehead` command line: parse arguments, run a command, map failures to exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error. Errors are one plain sentence
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import commands

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="bridgehead", description="Serve legacy databases as authenticated HTTP APIs."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the agent in the foreground")
    run.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    check = sub.add_parser("check", help="validate the config and probe every source")
    check.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    demo = sub.add_parser("demo", help="run a sample database behind a local agent")
    demo.add_argument("--dir", type=Path, default=Path("bridgehead-demo"), help="demo folder")
    demo.add_argument("--port", type=int, default=8470, help="local API port (0: any free)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            return commands.run(args.config)
        if args.command == "check":
            return commands.check(args.config)
        return commands.demo(args.dir, args.port)
    except commands.UsageError as exc:
        print(f"bridgehead: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except commands.Failure as exc:
        print(f"bridgehead: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
