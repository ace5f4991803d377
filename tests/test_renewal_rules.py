"""Renewal's pure rules and its command-line faces, without a relay: when renewal falls due
and how failed attempts back off (an injected clock), which certificates the agent accepts,
`tunnel.renew_at` validation, the revocation file (serials beside the older format),
`bridgehead check` printing the days left, and an agent with an expired tunnel certificate
refused at start with the command that fixes it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from cryptography import x509
from tunnelkit import Pki, make_pki, tunnel_section

from bridgehead.agent.config import load_config
from bridgehead.certs.pki import Identity, create_csr, issue_agent_cert, sign_agent_csr
from bridgehead.certs.renewal import Renewal, check_renewed, retry_backoff
from bridgehead.common.config.document import ConfigError
from bridgehead.relay.revocations import Revocations, RevocationsDamaged, parse_serial

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PLANT = Identity("plant-7", "plants")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def module_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def certificate(pki: Pki, **kw: Any) -> x509.Certificate:
    pem, _ = issue_agent_cert(pki.ca_cert_pem, pki.ca_key_pem, PLANT, **kw)
    return x509.load_pem_x509_certificate(pem)


def test_renewal_falls_due_at_the_fraction_of_the_lifetime(module_pki: Pki) -> None:
    """A 30-day certificate with renew_at 0.67 is due 20.1 days after its not_before, not
    a second earlier, and only one attempt runs at a time."""
    clock = Clock(NOW)
    renewal = Renewal(0.67, clock)
    renewal.track(certificate(module_pki, now=NOW, days=30))
    assert renewal.due_at is not None
    start = NOW - timedelta(minutes=5)  # the CA dates certificates a little early
    assert renewal.due_at == start + (timedelta(days=30, minutes=5)) * 0.67
    clock.now = renewal.due_at - timedelta(seconds=1)
    assert not renewal.is_due()
    clock.now = renewal.due_at
    assert renewal.is_due()
    renewal.start()
    assert not renewal.is_due()
    assert renewal.status().renewing


def test_failed_attempts_back_off_and_a_renewal_starts_over(module_pki: Pki) -> None:
    """Each failure is counted with its error and waits between half the ceiling and the
    ceiling (doubling from 60 s up to an hour); a renewal resets the count and moves the due
    date to the new certificate's."""
    clock = Clock(NOW + timedelta(days=21))
    renewal = Renewal(0.67, clock, retry_backoff())
    renewal.track(certificate(module_pki, now=NOW, days=30))
    delays = []
    for attempt in range(1, 9):
        renewal.start()
        delays.append(renewal.failed(f"refused {attempt}"))
        assert not renewal.is_due()
        status = renewal.status()
        assert (status.attempts, status.last_error) == (attempt, f"refused {attempt}")
        assert status.next_attempt == clock.now + timedelta(seconds=delays[-1])
        clock.now = status.next_attempt
        assert renewal.is_due()
    ceilings = [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    renewal.start()
    renewal.renewed(certificate(module_pki, now=clock.now, days=30))
    status = renewal.status()
    assert (status.attempts, status.last_error, status.next_attempt) == (0, None, None)
    assert not renewal.is_due()
    assert status.seconds_left == pytest.approx(30 * 86400, abs=1)


def test_the_agent_accepts_only_its_own_certificate(module_pki: Pki, tmp_path: Path) -> None:
    """A renewed certificate must come from the pinned CA, for the pending key, naming this
    agent's identity, and be valid now; each refusal is one sentence."""
    pki = module_pki
    csr, key = create_csr(PLANT)
    good = sign_agent_csr(pki.ca_cert_pem, pki.ca_key_pem, csr, PLANT, now=NOW)
    assert check_renewed(pki.ca_cert_pem, good, key, PLANT, NOW).serial_number > 0
    other = make_pki(tmp_path)
    cases = {
        "not issued by the CA": sign_agent_csr(other.ca_cert_pem, other.ca_key_pem, csr, PLANT),
        "not for the key": issue_agent_cert(pki.ca_cert_pem, pki.ca_key_pem, PLANT)[0],
        "names agent plant-8": sign_agent_csr(
            pki.ca_cert_pem, pki.ca_key_pem, csr, Identity("plant-8", "plants"), now=NOW
        ),
        "not valid now": sign_agent_csr(
            pki.ca_cert_pem, pki.ca_key_pem, csr, PLANT, now=NOW - timedelta(days=100)
        ),
        "no PEM certificate": b"not a certificate",
    }
    for says, pem in cases.items():
        with pytest.raises(ValueError, match=says):
            check_renewed(pki.ca_cert_pem, pem, key, PLANT, NOW)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.2])
def test_renew_at_must_be_a_fraction(module_pki: Pki, tmp_path: Path, value: float) -> None:
    """tunnel.renew_at outside 0 < x < 1 is a config error naming its path."""
    section = tunnel_section(module_pki, 8443, tmp_path / "a.pem", tmp_path / "a.key")
    path = write_config(tmp_path, {**section, "renew_at": value})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any("tunnel.renew_at" in str(problem) for problem in caught.value.problems)


def test_serial_revocations_sit_beside_the_older_format(tmp_path: Path) -> None:
    """A file written before serials existed still reads; a serial revocation refuses that
    certificate only, outlives a restart, and is written as hex; a damaged serial is an error."""
    (tmp_path / "revoked.json").write_text(
        '{"revoked": [{"agent_id": "plant-8", "at": "2026-11-24T12:00:00+00:00"}]}'
    )
    revocations = Revocations(tmp_path)
    assert revocations.reload()
    assert revocations.refuses("plant-8", NOW - timedelta(days=1))
    revocations.revoke("plant-7", NOW, serial=0xAB12)
    again = Revocations(tmp_path)
    again.reload()
    issued = NOW - timedelta(days=1)
    assert again.refuses("plant-7", issued, 0xAB12)
    assert not again.refuses("plant-7", issued, 0xAB13)
    assert not again.refuses("plant-7", issued)
    assert again.refuses("plant-8", issued, 0xAB12)
    entries = orjson.loads((tmp_path / "revoked.json").read_bytes())["revoked"]
    assert {"agent_id": "plant-7", "serial": "ab12", "at": NOW.isoformat()} in entries
    assert parse_serial("0xAB:12") == parse_serial("ab12") == 0xAB12
    (tmp_path / "revoked.json").write_text(
        '{"revoked": [{"agent_id": "plant-7", "serial": "xyz", "at": "2026-11-24T12:00:00+00:00"}]}'
    )
    with pytest.raises(RevocationsDamaged, match="not a hexadecimal certificate serial"):
        Revocations(tmp_path).reload()


def write_config(folder: Path, tunnel: dict[str, Any]) -> Path:
    with sqlite3.connect(folder / "t.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
    db.close()
    config = {
        "sources": {"db": {"sqlite": str(folder / "t.db")}},
        "resources": {"t": {"source": "db", "table": "t"}},
        "listen": "127.0.0.1:0",
        "admin": None,
        "state_dir": str(folder / "state"),
        "tunnel": tunnel,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def bridgehead(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bridgehead.agent.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_check_prints_the_days_left(module_pki: Pki, tmp_path: Path) -> None:
    """`bridgehead check` names the tunnel certificate's days left and expiry date; an expired
    one fails the check with the enroll command."""
    cert, key = module_pki.agent("fresh", "plant-7", days=30)
    path = write_config(tmp_path, tunnel_section(module_pki, 8443, cert, key))
    result = bridgehead("check", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tunnel.cert: ok (30.0 days left, until " in result.stdout
    old_cert, old_key = module_pki.agent("old", "plant-7", now=NOW - timedelta(days=400))
    path = write_config(tmp_path, tunnel_section(module_pki, 8443, old_cert, old_key))
    result = bridgehead("check", "-c", str(path))
    assert result.returncode != 0
    assert "tunnel.cert: FAILED: the tunnel certificate" in result.stdout
    assert "bridgehead enroll TOKEN" in result.stdout


def test_an_expired_certificate_is_refused_at_start(module_pki: Pki, tmp_path: Path) -> None:
    """`bridgehead run` with an expired tunnel certificate exits 2 with one sentence naming
    the file, the date, and the commands that get a new certificate; no traceback."""
    cert, key = module_pki.agent("expired", "plant-7", now=NOW - timedelta(days=400), days=30)
    path = write_config(tmp_path, tunnel_section(module_pki, 8443, cert, key))
    result = bridgehead("run", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"bridgehead: the tunnel certificate {cert} expired on ")
    assert "`bridgehead enroll TOKEN -c agent.yaml`" in result.stderr
    assert "`bridgehead-relay token create --agent ID`" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
