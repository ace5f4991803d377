"""Reads any Bridgehead config file (the agent's or the relay's): YAML → substitution →
validation → cross-references.

Every problem is collected and raised together as `ConfigError`, each with its key path
and line, e.g. `resources.customers.source: line 14: no source named 'erpp' (sources: erp)`.
Messages never include values: a value may be a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from bridgehead.common.config.base import Document
from bridgehead.common.config.substitute import Substituted, decrypt_values, substitute
from bridgehead.common.config.yamltree import Path_, YamlProblem, parse


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.path}: {where}{self.message}" if self.path else f"{where}{self.message}"


class ConfigError(Exception):
    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = file
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


def dotted(path: Path_) -> str:
    return ".".join(str(part) for part in path)


def line_of(path: Path_, lines: Mapping[Path_, int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


Decrypter = Callable[[Path], Callable[[str], str]]


def read_text(file: Path) -> str:
    """The config file's text, or ConfigError with the one problem: it cannot be read."""
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(file, [Problem("", None, f"cannot read {file}: {reason}")]) from None


Model = TypeVar("Model", bound=Document)
References = Callable[[Mapping[str, Any]], list[tuple[Path_, str]]]


def parse_document(
    text: str,
    file: Path,
    model: type[Model],
    references: References,
    *,
    environ: Mapping[str, str] | None = None,
    decrypter: Decrypter | None = None,
) -> Model:
    """Any Bridgehead config file (the agent's or the relay's) into its frozen model."""
    base_dir = file.resolve().parent
    data, lines = _yaml(text, file)
    if not isinstance(data, dict):
        message = "the config must be a YAML mapping of keys to values (sources:, resources:, ...)"
        raise ConfigError(file, [Problem("", lines.get((), 1), message)])
    problems: list[Problem] = []
    if "base_dir" in data:
        line = lines.get(("base_dir",))
        problems.append(Problem("base_dir", line, "base_dir is set by the program; remove it"))
        del data["base_dir"]
    _default_state(data, environ, model, file)
    result = substitute(data, base_dir, environ)
    if result.encrypted:
        state = model.state_path_in(result.data, base_dir)
        decrypt_values(result, decrypter(state) if decrypter else None)
    problems += [
        Problem(dotted(f.path), line_of(f.path, lines), f.message) for f in result.problems
    ]
    problems += [Problem(dotted(p), line_of(p, lines), m) for p, m in references(result.data)]
    config, invalid = _validated(model, result, base_dir, lines)
    problems += invalid
    if problems or config is None:
        raise ConfigError(file, problems)
    return config


def _default_state(
    data: dict[str, Any], environ: Mapping[str, str] | None, model: type[Document], file: Path
) -> None:
    """Where a config without `state_dir` keeps its state when installed as a service: where
    systemd made room for it (`$STATE_DIRECTORY`, under a unit with `StateDirectory=`), and
    for a config in /etc/SERVICE, /var/lib/SERVICE even when an operator's command reads it
    (`sudo bridgehead secret encrypt`, `bridgehead-relay token create`), so that both use one
    folder and never one beside the config (read-only to the service)."""
    if "state_dir" in data:
        return
    given = (os.environ if environ is None else environ).get("STATE_DIRECTORY", "")
    if given:
        data["state_dir"] = given.split(":")[0]
    elif os.name == "posix" and file.resolve().parent == Path("/etc") / model.SERVICE:
        data["state_dir"] = str(Path("/var/lib") / model.SERVICE)


def _validated(
    model: type[Model], result: Substituted, base_dir: Path, lines: Mapping[Path_, int]
) -> tuple[Model | None, list[Problem]]:
    """The model, or the validation problems not already reported where substitution failed."""
    try:
        data = {**result.data, "base_dir": base_dir}
        return model.model_validate(data, context={"base_dir": base_dir}), []
    except ValidationError as exc:
        failed = {f.path for f in result.problems}
        return None, [
            _problem(error, lines, result.secret_paths)
            for error in exc.errors()
            if not any(tuple(error["loc"])[: len(p)] == p for p in failed)
        ]


_SHAPES = {
    "SourceConfig": "a source is a mapping with one adapter key, "
    "e.g. {sqlite: PATH} or {odbc: CONNECTION-STRING}",
    "ListenConfig": "listen is HOST:PORT (e.g. 127.0.0.1:8470) or "
    "{address: HOST:PORT, tls: {cert: FILE, key: FILE}}",
    "HostPort": "an address is HOST:PORT, e.g. 127.0.0.1:8471",
}


def state_path_of(text: str, file: Path, model: type[Document]) -> Path:
    """The state folder a config file names, without validating the rest of it (for commands
    that only need the folder, such as encrypting a secret for a config still being written).
    ConfigError if the file is not YAML or its state_dir cannot be substituted."""
    base_dir = file.resolve().parent
    data, lines = _yaml(text, file)
    if not isinstance(data, dict):
        data = {}
    _default_state(data, None, model, file)
    result = substitute({"state_dir": data.get("state_dir")}, base_dir)
    if result.problems:
        problems = [
            Problem(dotted(f.path), line_of(f.path, lines), f.message) for f in result.problems
        ]
        raise ConfigError(file, problems)
    return model.state_path_in(result.data, base_dir)


def _yaml(text: str, file: Path) -> tuple[Any, dict[Path_, int]]:
    """The YAML document and its line map, or ConfigError with the one problem."""
    try:
        return parse(text)
    except YamlProblem as exc:
        raise ConfigError(file, [Problem(dotted(exc.path), exc.line, exc.message)]) from None


def _problem(error: Any, lines: Mapping[Path_, int], secret_paths: set[Path_]) -> Problem:
    loc: Path_ = tuple(error["loc"])
    kind = error["type"]
    shape = _SHAPES.get((error.get("ctx") or {}).get("class_name", ""))
    if kind in ("model_type", "model_attributes_type", "dict_type") and shape:
        message = shape
    elif kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}; check its spelling against the config reference"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}"
        loc = loc[:-1]
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if any(loc[: len(p)] == p for p in secret_paths) and isinstance(error["input"], str):
            message = message.replace(repr(error["input"]), "the substituted value")
    return Problem(dotted(loc), line_of(tuple(error["loc"]), lines), message)
