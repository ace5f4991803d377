"""What keeps secrets out of a support bundle, in two layers.

1. The config as written, with every value that is or holds a secret replaced by a marker:
   `${env:...}` and `${file:...}` references (their substituted values are secrets by
   assumption), `enc:` values, the values of secret-named keys (`key_sha256`,
   `token_sha256`, `token`, `password`, ...), and whatever `common.redact.scrub` catches
   (ODBC `PWD=`, passwords in URLs, bearer tokens).
2. `Secrets`: every secret value the config resolves to (substituted and decrypted values,
   connection-string passwords, SecretStr fields, digests), replaced wherever it appears in
   any file of the bundle, so a driver message or a log line that quotes one cannot leak it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from bridgehead.agent.config.model import AgentConfig, SourceConfig
from bridgehead.certs.secretbox import SecretBox
from bridgehead.common.config.substitute import decrypt_values, substitute
from bridgehead.common.redact import REDACTED, scrub

SECRET_KEYS = frozenset(
    {"key_sha256", "token_sha256", "token", "password", "passwd", "pwd", "secret", "api_key"}
)
_REFERENCE = re.compile(r"\$\{(env|file):([^}]*)\}")
_ODBC_PASSWORD = re.compile(r"(?i)\b(?:pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")
SHORTEST = 4
"""Known secrets shorter than this are not searched for (they would match ordinary text)."""


def redacted_config(text: str) -> str:
    """The config file's YAML with every secret replaced by a marker; a file that is not
    YAML is not copied at all (a secret could sit anywhere in it)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        return f"# the config is not valid YAML{line}, so it is not included\n"
    header = f"# secrets are replaced by {REDACTED} markers\n"
    return header + yaml.safe_dump(_redacted(data, None), sort_keys=False, allow_unicode=True)


def _redacted(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    if isinstance(key, str) and key.lower() in SECRET_KEYS and value is not None:
        return REDACTED
    if isinstance(value, str):
        if value.startswith("enc:"):
            return f"{REDACTED} (enc: value)"
        return _REFERENCE.sub(lambda m: f"{REDACTED} (from {m[1]}:{m[2]})", scrub(value))
    return value


class Secrets:
    """Every secret value a config resolves to, and the scrubbing of them from text."""

    def __init__(self, values: Iterable[str]) -> None:
        found = {v for v in values if len(v) >= SHORTEST}
        # Longest first, so a secret that contains another is replaced whole.
        self.values = sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return scrub(text)

    @classmethod
    def of(cls, text: str, file: Path, config: AgentConfig | None) -> Secrets:
        values = list(_substituted(text, file))
        if config is not None:
            values += _model_secrets(config)
        return cls([*values, *(p for v in values for p in _odbc_passwords(v))])


def _substituted(text: str, file: Path) -> Iterator[str]:
    """The values `${...}` and `enc:` references resolve to, as far as they can be."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    if not isinstance(data, dict):
        return
    base_dir = file.resolve().parent
    result = substitute(data, base_dir)
    if result.encrypted:
        state = AgentConfig.state_path_in(result.data, base_dir)
        # No key: the enc: values stay sealed, and the bundle shows none of them.
        with contextlib.suppress(OSError, ValueError):
            decrypt_values(result, SecretBox(state).open)
    for path in result.secret_paths:
        value = _at(result.data, path)
        if isinstance(value, str):
            yield value


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _odbc_passwords(value: str) -> Iterator[str]:
    for match in _ODBC_PASSWORD.finditer(value):
        password = match[1]
        yield password
        if password.startswith("{") and password.endswith("}"):
            yield password[1:-1].replace("}}", "}")


def _model_secrets(model: Any) -> Iterator[str]:
    """SecretStr values and secret-named fields anywhere in the validated config."""
    if isinstance(model, SourceConfig):  # a SQLite path is no secret; an ODBC PWD= is
        yield from _odbc_passwords(model.target.get_secret_value())
    elif isinstance(model, SecretStr):
        yield model.get_secret_value()
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if name in SECRET_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _model_secrets(value)
    elif isinstance(model, Mapping):
        for value in model.values():
            yield from _model_secrets(value)
    elif isinstance(model, tuple | list):
        for value in model:
            yield from _model_secrets(value)
