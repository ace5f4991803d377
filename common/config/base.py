"""The base models every Bridgehead config is made of: frozen, unknown keys are errors.

Relative paths are resolved beside the config file; durations accept `30s`, `5m`, ...
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridgehead.common.config.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


def beside(value: Path, base_dir: Path | None) -> Path:
    """Relative paths are relative to the config file's folder, not the working directory."""
    value = value.expanduser()
    return value if value.is_absolute() or base_dir is None else base_dir / value


def _beside_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return beside(value, None if base is None else Path(base))


ConfigPath = Annotated[Path, AfterValidator(_beside_config)]


def _sha256_hex(value: Any) -> Any:
    text = value.replace(":", "") if isinstance(value, str) else value
    if not isinstance(text, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(
            "must be a SHA-256 as 64 hex digits (colons allowed between pairs), "
            'e.g. from printf %s "$SECRET" | sha256sum'
        )
    return text.lower()


Sha256Hex = Annotated[str, BeforeValidator(_sha256_hex)]
"""A SHA-256 digest written as hex, stored lower-case without colons."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Document(Frozen):
    """A whole config file: it knows its folder and where its state folder is."""

    STATE_FOLDER: ClassVar[str] = "state"
    """The state folder's name beside the config file when `state_dir` is not set."""
    SERVICE: ClassVar[str] = "bridgehead"
    """The service's name: a config in /etc/SERVICE keeps its state in /var/lib/SERVICE."""

    state_dir: ConfigPath | None = None
    base_dir: Path = Field(Path(), exclude=True)
    """The config file's folder; set by the loader, not by YAML."""

    @property
    def state_path(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.base_dir / self.STATE_FOLDER

    @classmethod
    def state_path_in(cls, data: Mapping[str, Any], base_dir: Path) -> Path:
        """The state folder a config's substituted data names, before it is validated (the
        secret key for `enc:` values lives there)."""
        raw = data.get("state_dir")
        if isinstance(raw, str) and raw:
            return beside(Path(raw), base_dir)
        return base_dir / cls.STATE_FOLDER


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostPort(Frozen):
    host: str
    port: int = Field(ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8470")
        return {"host": host.strip("[]") or "127.0.0.1", "port": int(port)}

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class TlsFiles(Frozen):
    cert: ConfigPath
    key: ConfigPath


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LoggingConfig(Frozen):
    """`logging:` in agent.yaml and relay.yaml: the level, and where lines go (stderr, or a
    file rotated at `max_bytes` keeping `backups` old files). `format: auto` writes JSON
    lines unless the destination is a terminal, where lines are readable text."""

    level: LogLevel = "INFO"
    file: ConfigPath | None = None
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    backups: int = Field(5, ge=0, le=1000)
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value
