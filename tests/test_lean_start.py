"""`bridgehead run` of an agent without a tunnel, JWT or `enc:` secrets leaves cryptography,
PyJWT, h2 and ruamel.yaml unimported: together ~15 MiB of resident memory it never uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ["cryptography", "jwt", "h2", "ruamel.yaml"]
PROGRAM = """
import sys
from pathlib import Path
import bridgehead.agent.cli
from bridgehead.agent.app import Agent
from bridgehead.agent.config import load_config
Agent(load_config(Path(sys.argv[1])))
print(" ".join(m for m in sys.argv[2:] if m in sys.modules))
"""


def test_an_agent_without_tunnel_jwt_or_secrets_does_not_import_them(tmp_path: Path) -> None:
    """Loading the CLI, the config and building the agent imports none of the heavy modules."""
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"sources:\n  db:\n    sqlite: {tmp_path / 'db.sqlite'}\n"
        "resources:\n  customers:\n    source: db\n    table: customers\n    key: [id]\n"
        f"auth:\n  api_keys:\n    - name: a\n      scopes: [customers:read]\n"
        f"      key_sha256: '{'ab' * 32}'\n"
        f"listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstate_dir: {tmp_path / 'state'}\n"
    )
    argv = [sys.executable, "-c", PROGRAM, str(config), *HEAVY]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == []
