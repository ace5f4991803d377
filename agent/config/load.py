"""Loads an agent config file: YAML → substitution → validation → cross-references.

Every problem is collected and raised together as `ConfigError` (bridgehead.common.config).
`enc:` values are opened with the secret key in the config's state folder (certs.secretbox).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from bridgehead.agent.config.model import AgentConfig
from bridgehead.agent.config.references import check_references
from bridgehead.certs.secretbox import SecretBox
from bridgehead.common.config.document import Decrypter, parse_document, read_text


def open_with_state_key(state_dir: Path) -> Callable[[str], str]:
    return SecretBox(state_dir).open


def load_config(
    file: Path,
    environ: Mapping[str, str] | None = None,
    decrypter: Decrypter | None = open_with_state_key,
) -> AgentConfig:
    """The validated config, or ConfigError listing every problem in the file."""
    file = Path(file)
    return parse_config(read_text(file), file, environ, decrypter)


def parse_config(
    text: str,
    file: Path,
    environ: Mapping[str, str] | None = None,
    decrypter: Decrypter | None = None,
) -> AgentConfig:
    return parse_document(
        text, file, AgentConfig, check_references, environ=environ, decrypter=decrypter
    )
