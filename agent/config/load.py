"""Loads an agent config file: YAML → substitution → validation → cross-references.

Every problem is collected and raised together as `ConfigError`, each with its key path
and line, e.g. `resources.customers.source: line 14: no source named 'erpp' (sources: erp)`.
Messages never include values: a value may be a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config.model import AgentConfig
from agent.config.references import check_references
from agent.config.substitute import substitute
from agent.config.yamltree import Path_, YamlProblem, parse


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


def load_config(
    file: Path,
    environ: Mapping[str, str] | None = None,
    decrypter: Decrypter | None = None,
) -> AgentConfig:
    """The validated config, or ConfigError listing every problem in the file."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(file, [Problem("", None, f"cannot read {file}: {reason}")]) from None
    return parse_config(text, file, environ, decrypter)


def parse_config(
    text: str,
    file: Path,
    environ: Mapping[str, str] | None = None,
    decrypter: Decrypter | None = None,
) -> AgentConfig:
    base_dir = file.resolve().parent
    try:
        data, lines = parse(text)
    except YamlProblem as exc:
        raise ConfigError(file, [Problem(dotted(exc.path), exc.line, exc.message)]) from None
    if not isinstance(data, dict):
        raise ConfigError(file, [Problem("", 1, "the config must be a YAML mapping (key: value)")])
    problems: list[Problem] = []
    if "base_dir" in data:
        problems.append(Problem("base_dir", lines.get(("base_dir",)), "unknown key 'base_dir'"))
        del data["base_dir"]
    decrypt = decrypter(_state_dir(data, base_dir)) if decrypter else None
    data, failed = substitute(data, base_dir, environ, decrypt)
    problems += [Problem(dotted(f.path), line_of(f.path, lines), f.message) for f in failed]
    try:
        config = AgentConfig.model_validate(
            {**data, "base_dir": base_dir}, context={"base_dir": base_dir}
        )
    except ValidationError as exc:
        problems += [_problem(error, lines) for error in exc.errors()]
        raise ConfigError(file, problems) from None
    problems += [Problem(dotted(p), line_of(p, lines), m) for p, m in check_references(config)]
    if problems:
        raise ConfigError(file, problems)
    return config


def _state_dir(data: dict[str, Any], base_dir: Path) -> Path:
    raw = data.get("state_dir")
    if isinstance(raw, str):
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base_dir / path
    return base_dir / "state"


def _problem(error: Any, lines: Mapping[Path_, int]) -> Problem:
    loc: Path_ = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}; check its spelling against the config reference"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}"
        loc = loc[:-1]
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
    return Problem(dotted(loc), line_of(tuple(error["loc"]), lines), message)
