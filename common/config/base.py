"""The base models every Bridgehead config is made of: frozen, unknown keys are errors.

Relative paths are resolved beside the config file; durations accept `30s`, `5m`, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from bridgehead.common.config.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


def _beside_config(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are relative to the config file's folder, not the working directory."""
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    return value if value.is_absolute() or base is None else Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_beside_config)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


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
