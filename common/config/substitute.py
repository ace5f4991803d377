"""Replaces `${env:NAME}` and `${file:PATH}` in config strings, before validation.

Substituted values are secrets by assumption: they are never echoed in an error message.
`enc:` values (secrets encrypted with the agent's key) are only noted in the walk and
decrypted afterwards (`decrypt_values`), once the state folder holding the key is known.

In an ODBC connection string (`sources.*.odbc`) a reference that is a whole attribute value
(`PWD=${env:DB_PW}`) is quoted the ODBC way when its value needs it (`{...}`, `}` doubled),
so a password holding `;`, `{` or `}` cannot break the string; such a value inside a longer
or already braced value cannot be quoted, and is a problem that says how to fix it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridgehead.common.config.yamltree import Path_

_REFERENCE = re.compile(r"\$\{(env|file):([^}]*)\}")


class SubstitutionError(Exception):
    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


Decrypt = Callable[[str], str]


@dataclass
class Substituted:
    data: Any
    problems: list[SubstitutionError] = field(default_factory=list)
    secret_paths: set[Path_] = field(default_factory=set)
    """Where a value came from a reference: never quote what is there."""
    encrypted: list[Path_] = field(default_factory=list)
    """Where an `enc:` value waits for `decrypt_values`."""


def substitute(
    data: Any,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> Substituted:
    """The data with every reference replaced, what could not be, and where values came in."""
    env = os.environ if environ is None else environ
    out = Substituted(None)
    problems = out.problems

    def resolve(match: re.Match[str], path: Path_) -> str:
        kind, name = match.group(1), match.group(2).strip()
        if kind == "env":
            if (value := env.get(name)) is None:
                problems.append(SubstitutionError(path, f"environment variable {name} is not set"))
                return ""
            return value
        file = Path(name).expanduser()
        file = file if file.is_absolute() else base_dir / file
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            problems.append(SubstitutionError(path, f"cannot read {file}: {exc.strerror}"))
            return ""

    def walk(value: Any, path: Path_) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and (value.startswith("enc:") or _REFERENCE.search(value)):
            out.secret_paths.add(path)
            if value.startswith("enc:"):
                out.encrypted.append(path)
                return value
            if _is_odbc(path):
                return _odbc_substitute(value, path, lambda m: resolve(m, path), problems)
            return _REFERENCE.sub(lambda m: resolve(m, path), value)
        return value

    out.data = walk(data, ())
    return out


def decrypt_values(out: Substituted, decrypt: Decrypt | None) -> None:
    """Replace each `enc:` value the walk noted with its plain text, in place."""
    for path in out.encrypted:
        parent = out.data
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = _decrypt(parent[path[-1]], path, decrypt, out.problems)


def _decrypt(
    value: str, path: Path_, decrypt: Decrypt | None, problems: list[SubstitutionError]
) -> str:
    if decrypt is None:
        problems.append(SubstitutionError(path, "enc: values need the agent's secret key"))
        return ""
    try:
        return decrypt(value)
    except ValueError as exc:
        problems.append(SubstitutionError(path, str(exc)))
        return ""


_NEEDS_BRACES = re.compile(r"[;{}]|^\s|\s$")


def _is_odbc(path: Path_) -> bool:
    return len(path) == 3 and path[0] == "sources" and path[2] == "odbc"


def _odbc_substitute(
    text: str,
    path: Path_,
    resolve: Callable[[re.Match[str]], str],
    problems: list[SubstitutionError],
) -> str:
    """The connection string with each reference replaced, quoted where it is a whole value."""

    def replace(match: re.Match[str]) -> str:
        value = resolve(match)
        if not _NEEDS_BRACES.search(value):
            return value
        before = text[: match.start()].rstrip()
        after = text[match.end() :].lstrip()
        if before.endswith("=") and (not after or after.startswith(";")):
            return "{" + value.replace("}", "}}") + "}"
        problems.append(
            SubstitutionError(
                path,
                f"the value of {match.group(0)} holds ';', '{{' or '}}', which cannot stand "
                "inside a longer or braced ODBC value: make the reference the whole value, "
                f"unbraced (e.g. PWD={match.group(0)}), and Bridgehead quotes it",
            )
        )
        return ""

    return _REFERENCE.sub(replace, text)
