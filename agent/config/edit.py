"""Edits `agent.yaml` the way a person would: only the keys that change, every comment,
blank line and other key kept (a round-trip YAML edit with ruamel.yaml).

`with_section` only computes the new text; the caller checks it (by loading it as a config)
and then replaces the file with `replace_config`, atomically and with the file's own mode,
so a process killed there leaves the old file or the new one, whole.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from bridgehead.common.files import write_atomically


def with_section(text: str, file: Path, section: str, values: Mapping[str, Any]) -> str:
    """`text` with `values` set inside the top-level mapping `section` (made if missing;
    its other keys stay). ValueError if the text is not a YAML mapping."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.representer.add_representer(type(None), _null)
    try:
        document = yaml.load(text)
    except YAMLError as exc:
        raise ValueError(f"{file} is not valid YAML ({exc}); fix it and run again") from None
    if not isinstance(document, CommentedMap):
        raise ValueError(f"{file} is not a YAML mapping; it must hold sources: and the rest")
    current = document.get(section)
    if not isinstance(current, CommentedMap):
        current = CommentedMap()
        document[section] = current
    for key, value in values.items():
        current[key] = value
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _null(representer: Any, _: None) -> Any:
    """`key: null` stays written as `null`, not as an empty value."""
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def replace_config(file: Path, text: str) -> None:
    write_atomically(file, text.encode("utf-8"), file.stat().st_mode & 0o777)
