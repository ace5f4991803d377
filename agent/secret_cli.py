"""`bridgehead secret encrypt`: read a secret on stdin and print the `enc:` value for the config.

The secret is read without echo from a terminal (or whole from a pipe, less one trailing line
break) and is never printed; only the `enc:` value goes to stdout, alone on its line. The key
lives in the agent's state folder, which comes from `-c agent.yaml` (only its `state_dir` is
read, so the rest of the config may still be unfinished); without `-c` and with no agent.yaml
here, it is ./state, the folder a config in this folder would use.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TextIO

from bridgehead.agent.config import AgentConfig
from bridgehead.certs.secretbox import SecretBox
from bridgehead.common.commands import UsageError
from bridgehead.common.config.document import ConfigError, read_text, state_path_of

DEFAULT_CONFIG = Path("agent.yaml")


def encrypt_command(config: Path | None, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    state = _state_folder(config, err)
    secret = _read_secret(stdin)
    try:
        value = SecretBox(state).seal(secret)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(
            f"cannot use the secret key in {state}: {reason}; make the state folder "
            "writable by this user, or name the agent's config with -c"
        ) from None
    print(value, file=out)
    return 0


def _state_folder(config: Path | None, err: TextIO) -> Path:
    if config is None and not DEFAULT_CONFIG.exists():
        folder = Path("state").resolve()
        print(f"bridgehead: no -c and no agent.yaml here: using the key in {folder}", file=err)
        return folder
    path = config or DEFAULT_CONFIG
    try:
        return state_path_of(read_text(path), path, AgentConfig)
    except ConfigError as exc:
        raise UsageError(f"{path}: {exc}; fix it, or name another config with -c") from None


def _read_secret(stdin: TextIO) -> str:
    if stdin.isatty():
        secret = getpass.getpass("Secret (not shown): ", stream=sys.stderr)
    else:
        secret = stdin.read()
        secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise UsageError("no secret given: pipe it on stdin, or type it at the prompt")
    return secret
