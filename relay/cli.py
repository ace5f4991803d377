"""The `bridgehead-relay` command line (SPEC §1)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="bridgehead-relay", description="The Bridgehead relay.")
    top.add_subparsers(dest="command", metavar="COMMAND")
    top.parse_args(argv)
    print("bridgehead-relay: this build has no relay commands yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
