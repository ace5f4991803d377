"""Secrets at rest: `bridgehead secret encrypt` prints an `enc:` value only this agent can open;
`enc:` values work wherever a secret goes; another agent's value, a tampered value, a missing
or exposed key file are clear errors at the YAML path; the secret is never printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dbservers import PostgresServer

from bridgehead.agent.config import load_config
from bridgehead.certs.secretbox import KEY_FILE, SecretBox
from bridgehead.common.config.document import ConfigError

BRIDGEHEAD = [sys.executable, "-m", "bridgehead.agent.cli"]
SECRET = "p@ss;w{o}rd=ü"


def encrypt(secret: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BRIDGEHEAD, "secret", "encrypt", *args],
        input=secret, capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BRIDGEHEAD, "check", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def agent_folder(root: Path, name: str, source: str = "") -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "agent.yaml").write_text(source or "sources:\n  erp:\n    sqlite: erp.db\n")
    return folder


def test_encrypt_prints_only_the_value_and_makes_a_private_key(tmp_path: Path) -> None:
    """The value is alone on stdout, the secret appears nowhere, and the key file is 0600 in
    the config's state folder (state_dir honoured)."""
    folder = agent_folder(tmp_path, "a", "sources:\n  erp:\n    sqlite: x.db\nstate_dir: var\n")
    result = encrypt(SECRET + "\n", "-c", "agent.yaml", cwd=folder)

    assert result.returncode == 0, result.stderr
    value = result.stdout.strip()
    assert value.startswith("enc:v1.")
    assert result.stdout == value + "\n"
    assert SECRET not in result.stdout + result.stderr
    assert (folder / "var" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert SecretBox(folder / "var").open(value) == SECRET  # one trailing newline dropped


def test_enc_value_serves_as_an_odbc_connection_string(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A whole ODBC connection string, password included, kept as an `enc:` value: `check`
    reaches the real PostgreSQL server with it, and no output shows it."""
    folder = agent_folder(tmp_path, "pg")
    conn = postgres_server.odbc_connection_string("postgres")
    value = encrypt(conn, "-c", "agent.yaml", cwd=folder).stdout.strip()
    (folder / "agent.yaml").write_text(f"sources:\n  pg:\n    odbc: '{value}'\n")

    result = check(folder / "agent.yaml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sources.pg: ok" in result.stdout
    assert postgres_server.password not in result.stdout + result.stderr


def test_another_agents_value_is_refused_at_its_path(tmp_path: Path) -> None:
    """A value sealed by agent A is, in agent B's config, a check error at the YAML path that
    says it came from another agent and how to fix it."""
    first, second = agent_folder(tmp_path, "a"), agent_folder(tmp_path, "b")
    value = encrypt(SECRET, "-c", "agent.yaml", cwd=first).stdout.strip()
    encrypt("other", "-c", "agent.yaml", cwd=second)  # b gets a key of its own
    (second / "agent.yaml").write_text(f"sources:\n  erp:\n    odbc: '{value}'\n")

    result = check(second / "agent.yaml")

    assert result.returncode == 2
    assert "sources.erp.odbc: line 3: this enc: value was encrypted by another agent" in (
        result.stderr
    )
    assert "bridgehead secret encrypt" in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("cut", [1, 8])
def test_a_tampered_value_is_refused(tmp_path: Path, cut: int) -> None:
    """Changing or dropping characters of the sealed part is detected (AES-GCM's tag)."""
    box = SecretBox(tmp_path / "state")
    value = box.seal(SECRET)
    flipped = value[:-cut] + ("A" if value[-cut] != "A" else "B") + value[len(value) - cut + 1 :]
    for bad in (flipped, value[:-cut]):
        with pytest.raises(ValueError, match="altered or cut short"):
            box.open(bad)


def test_a_missing_key_file_is_a_problem_naming_it(tmp_path: Path) -> None:
    """Without its key file an `enc:` value is a config problem naming the file; no new key is
    made by reading."""
    value = SecretBox(tmp_path / "state").seal(SECRET)
    (tmp_path / "state" / KEY_FILE).unlink()
    (tmp_path / "agent.yaml").write_text(f"sources:\n  erp:\n    odbc: '{value}'\n")

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "agent.yaml")

    (problem,) = caught.value.problems
    assert problem.path == "sources.erp.odbc"
    assert f"needs the secret key {tmp_path / 'state' / KEY_FILE}, which does not exist" in str(
        problem
    )
    assert not (tmp_path / "state" / KEY_FILE).exists()


def test_a_key_file_others_can_read_is_refused_with_the_chmod(tmp_path: Path) -> None:
    """A secret key readable by its group is not used: the problem names the chmod to run."""
    value = SecretBox(tmp_path / "state").seal(SECRET)
    key = tmp_path / "state" / KEY_FILE
    key.chmod(0o640)
    (tmp_path / "agent.yaml").write_text(f"sources:\n  erp:\n    odbc: '{value}'\n")

    result = check(tmp_path / "agent.yaml")

    assert result.returncode == 2
    assert f"can be read by its group (mode 0640); run: chmod 600 {key}" in result.stderr


def test_values_load_into_the_config_as_secrets(tmp_path: Path) -> None:
    """An `enc:` value loads as the plain secret, and the model's repr never shows it."""
    value = SecretBox(tmp_path / "state").seal(SECRET)
    (tmp_path / "agent.yaml").write_text(f"sources:\n  erp:\n    odbc: '{value}'\n")

    config = load_config(tmp_path / "agent.yaml")

    assert config.sources["erp"].target.get_secret_value() == SECRET
    assert SECRET not in repr(config)


class Reversed:
    """A stand-in for DPAPI: what is stored is not the key itself."""

    def protect(self, key: bytes) -> bytes:
        return key[::-1]

    def unprotect(self, stored: bytes) -> bytes:
        return stored[::-1]


def test_the_key_goes_through_the_protector(tmp_path: Path) -> None:
    """The key file holds what the protector made of the key (DPAPI's output on Windows), and
    only the same protector opens the values."""
    sealed = SecretBox(tmp_path, Reversed()).seal(SECRET)

    assert SecretBox(tmp_path, Reversed()).open(sealed) == SECRET
    with pytest.raises(ValueError, match="another agent"):
        SecretBox(tmp_path).open(sealed)


def test_no_secret_on_stdin_is_a_usage_error(tmp_path: Path) -> None:
    """An empty stdin is exit 2 with a sentence saying how to give the secret."""
    result = encrypt("", cwd=tmp_path)

    assert result.returncode == 2
    assert "no secret given" in result.stderr
    assert not (tmp_path / "state" / KEY_FILE).exists()
