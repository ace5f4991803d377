# The `bridgehead-relay` command line: `ca init` makes the CA and the relay's certificate
# (keys 0600, never overwritten), `run` serves until SIGTERM, and bad configs are exit 2.
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509

RELAY = [sys.executable, "-m", "bridgehead.relay.cli"]
CONFIG = """\
tls: {cert: relay.pem, key: relay.key}
ca: {cert: ca.pem, key: ca.key}
listen: 127.0.0.1:0
agents_listen: 127.0.0.1:0
admin: null
"""


def relay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELAY, *args], capture_output=True, text=True, timeout=60, check=False)


def test_ca_init_makes_the_ca_and_the_relay_certificate(tmp_path: Path) -> None:
    """ca init writes the CA and a server certificate with the SANs asked for; keys are 0600."""
    (tmp_path / "relay.yaml").write_text(CONFIG)
    result = relay("ca", "init", "-c", str(tmp_path / "relay.yaml"), "--san", "relay.example.com",
                   "--san", "10.0.0.5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "relay.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["relay.example.com"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "relay.key").stat().st_mode & 0o777 == 0o600
    again = relay("ca", "init", "-c", str(tmp_path / "relay.yaml"))
    assert again.returncode == 2
    assert "already exists; move it away to create a new CA" in again.stderr


def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    """run starts the relay's ports and exits 0 on SIGTERM."""
    (tmp_path / "relay.yaml").write_text(CONFIG)
    assert relay("ca", "init", "-c", str(tmp_path / "relay.yaml")).returncode == 0
    with subprocess.Popen(
        [*RELAY, "run", "-c", str(tmp_path / "relay.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        while "relay: agents on" not in process.stderr.readline():
            assert time.monotonic() < deadline
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


def test_bad_relay_config_is_exit_2(tmp_path: Path) -> None:
    """A relay config with an unknown key and a missing tls section is refused with lines."""
    (tmp_path / "relay.yaml").write_text("ca: {cert: ca.pem}\ncolour: red\n")
    result = relay("run", "-c", str(tmp_path / "relay.yaml"))
    assert result.returncode == 2
    assert "colour: line 2: unknown key 'colour'" in result.stderr
    assert "missing required key 'tls'" in result.stderr


def test_a_caller_bound_to_a_certificate_needs_callers_ca(tmp_path: Path) -> None:
    """cert_sha256 without callers_ca is a config error naming the fix, at its line."""
    digest = "ab" * 32
    (tmp_path / "relay.yaml").write_text(
        CONFIG + f"callers:\n  - name: crm\n    token_sha256: {digest}\n    cert_sha256: {digest}\n"
        "    agents: [plant-7]\n"
    )
    result = relay("run", "-c", str(tmp_path / "relay.yaml"))
    assert result.returncode == 2
    assert "callers.0.cert_sha256: line 9: needs callers_ca" in result.stderr


def test_start_up_failures_are_one_sentence(tmp_path: Path) -> None:
    """A missing certificate file is exit 2 and an address in use exit 1, each one sentence
    naming the file or the address, never a traceback."""
    (tmp_path / "relay.yaml").write_text(CONFIG)
    missing = relay("run", "-c", str(tmp_path / "relay.yaml"))  # no ca init: no files yet
    assert missing.returncode == 2, missing.stderr
    assert "cannot load tls (" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert relay("ca", "init", "-c", str(tmp_path / "relay.yaml")).returncode == 0
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        busy = CONFIG.replace("listen: 127.0.0.1:0\nagents", f"listen: 127.0.0.1:{port}\nagents")
        (tmp_path / "relay.yaml").write_text(busy)
        taken = relay("run", "-c", str(tmp_path / "relay.yaml"))
    assert taken.returncode == 1, taken.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "Traceback" not in taken.stderr


def test_a_bad_config_is_reported_like_the_agents(tmp_path: Path) -> None:
    """The relay lists a config's problems under the same header the agent uses: the file,
    how many problems (singular for one), and that they need fixing; exit 2, no traceback."""
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG + "heartbeat: soon\n")
    one = relay("run", "-c", str(config))
    config.write_text(CONFIG + "heartbeat: soon\ndead_after: never\n")
    two = relay("run", "-c", str(config))

    assert one.returncode == two.returncode == 2
    assert f"{config}: 1 problem; fix and retry:\n  heartbeat: line 6:" in one.stderr
    assert f"{config}: 2 problems; fix and retry:\n" in two.stderr
    assert "Traceback" not in one.stderr + two.stderr


def test_a_key_others_can_read_stops_the_relay(tmp_path: Path) -> None:
    """The relay refuses to start while its CA key is readable by other users, naming the
    file and the chmod that fixes it (exit 2); after the chmod the same config gets past it."""
    (tmp_path / "relay.yaml").write_text(CONFIG)
    assert relay("ca", "init", "-c", str(tmp_path / "relay.yaml")).returncode == 0
    (tmp_path / "ca.key").chmod(0o604)

    result = relay("run", "-c", str(tmp_path / "relay.yaml"))

    assert result.returncode == 2
    assert f"{tmp_path / 'ca.key'} can be read by other users (mode 0604); run: chmod 600 " in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
