"""`bridgehead init --odbc CONN | --sqlite FILE [-o agent.yaml]`: survey the database and
write a starter config (agent.starter), then say what to do next.

On stdout: what was written, the API key (shown only here), and the environment variable to
set when the password was moved out of the connection string. A database that cannot be
reached is exit 1 with the reason; an existing output file or a missing SQLite file exit 2.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bridgehead.adapters import registry
from bridgehead.adapters.base import Adapter, SourceSettings
from bridgehead.adapters.errors import SourceError
from bridgehead.agent.config.load import open_with_state_key, parse_config
from bridgehead.agent.starter import Found, hide_password, relative_to, starter_config, survey
from bridgehead.certs.secretbox import KEY_FILE, SecretBox
from bridgehead.common.commands import Failure, UsageError
from bridgehead.common.config.document import ConfigError
from bridgehead.common.files import write_atomically

PASSWORD_VARIABLE = "BRIDGEHEAD_DB_PASSWORD"  # noqa: S105 - the variable's name
CONFIG_MODE = 0o640


def init_command(
    odbc: str | None,
    sqlite: Path | None,
    output: Path,
    patterns: tuple[Sequence[str], Sequence[str]],
    out: TextIO,
) -> int:
    if output.exists():
        raise UsageError(f"{output} already exists; name another file with -o, or move it away")
    if sqlite is not None and not sqlite.is_file():
        raise UsageError(f"{sqlite} is not a SQLite database file; check the path")
    adapter_name, target = ("odbc", odbc) if odbc is not None else ("sqlite", str(sqlite))
    adapter = registry.load(adapter_name)(
        SourceSettings(name="db", adapter=adapter_name, target=target, base_dir=Path.cwd())
    )
    found = asyncio.run(_survey(adapter, patterns))
    written, variable = _target(adapter_name, target, output)
    starter = starter_config(adapter_name, written, found)
    _check(starter.text, output, variable)
    write_atomically(output, starter.text.encode(), CONFIG_MODE)
    _report(output, found, starter.api_key, variable, out)
    return 0


async def _survey(adapter: Adapter, patterns: tuple[Sequence[str], Sequence[str]]) -> list[Found]:
    try:
        await adapter.open()
        return await survey(adapter, *patterns)
    except SourceError as exc:
        raise Failure(f"cannot read the database's tables: {exc.public_detail}") from None
    finally:
        await adapter.close()


def _target(adapter_name: str, target: str, output: Path) -> tuple[str, str | None]:
    """What the config says for the source, and the variable that must hold its password."""
    folder = output.resolve().parent
    if adapter_name == "sqlite":
        return relative_to(Path(target), folder), None
    state = folder / "state"
    if (state / KEY_FILE).exists():
        return SecretBox(state).seal(target), None
    hidden, had_password = hide_password(target, PASSWORD_VARIABLE)
    return hidden, PASSWORD_VARIABLE if had_password else None


def _check(text: str, output: Path, variable: str | None) -> None:
    environ = {**os.environ, **({variable: "to-be-set"} if variable else {})}
    try:
        parse_config(text, output, environ, decrypter=open_with_state_key)
    except ConfigError as exc:  # a name this module made that the config refuses: a bug
        raise Failure(f"the starter config would not load ({exc}); nothing written") from None


def _report(
    output: Path, found: Sequence[Found], api_key: str, variable: str | None, out: TextIO
) -> None:
    keyless = [str(f.entry.ref) for f in found if not f.key]
    print(f"wrote {output}: {len(found)} resources, read-only", file=out)
    if keyless:
        print(f"  without a key (lists only; add key: to serve rows one by one): "
              f"{', '.join(keyless)}", file=out)  # fmt: skip
    print(f"API key for 'starter' (shown only now): {api_key}", file=out)
    if variable:
        print(f"set {variable} to the database password before `bridgehead run`", file=out)
    print(f"next: bridgehead check -c {output}", file=out)
