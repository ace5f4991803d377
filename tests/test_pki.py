# The relay's PKI as a relay and its agents meet it: the CA and what it issues verify, carry
# exactly the names and key usages promised, and carry the agent's Identity; CSR names are
# overruled by the relay; and a real TLS 1.3 handshake on 127.0.0.1 (stdlib ssl, strict X.509
# checks) accepts an agent certificate from the CA and refuses one from another CA or an expired
# one. Sync tests with bounded sockets and joined threads (no event loop involved).
from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridgehead.certs.pki import (
    Identity,
    create_ca,
    create_csr,
    issue_agent_cert,
    issue_server_cert,
    sign_agent_csr,
    write_key_pair,
)

TIMEOUT = 5.0
T = TypeVar("T", bound=x509.ExtensionType)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return create_ca()


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def extension(cert: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_is_self_signed_with_ca_extensions(ca: tuple[bytes, bytes]) -> None:
    """The CA certificate verifies with its own key and is marked as a path-length-0 CA that
    signs certificates and CRLs only, with a subject key identifier."""
    cert = load(ca[0])
    cert.verify_directly_issued_by(cert)
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    extension(cert, x509.SubjectKeyIdentifier)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Bridgehead agents CA"
    )


def test_keys_are_p256_and_signatures_sha256(ca: tuple[bytes, bytes]) -> None:
    """Every key made is ECDSA P-256 and every certificate is signed with SHA-256."""
    server_pem, server_key = issue_server_cert(*ca, ["relay.example.com"])
    agent_pem, agent_key = issue_agent_cert(*ca, Identity("a1"))
    for pem in (ca[0], server_pem, agent_pem):
        assert isinstance(load(pem).signature_hash_algorithm, hashes.SHA256)
    for key_pem in (ca[1], server_key, agent_key):
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)


def test_server_cert_names_and_usage(ca: tuple[bytes, bytes]) -> None:
    """A server certificate verifies against the CA, has IP SANs for addresses and DNS SANs for
    the rest, serverAuth only, digitalSignature, the CA's key id, and CN = the first name."""
    pem, _ = issue_server_cert(*ca, ["relay.example.com", "10.0.0.7", "::1", "localhost"])
    cert, ca_cert = load(pem), load(ca[0])
    cert.verify_directly_issued_by(ca_cert)
    san = extension(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["relay.example.com", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("::1"),
    ]
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert extension(cert, x509.KeyUsage).value.digital_signature
    assert not extension(cert, x509.BasicConstraints).value.ca
    ca_ski = extension(ca_cert, x509.SubjectKeyIdentifier).value.digest
    assert extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "relay.example.com"
    )


@pytest.mark.parametrize("names", [[], ["bad name"], ["relä.example"]])
def test_server_cert_refuses_bad_names(ca: tuple[bytes, bytes], names: list[str]) -> None:
    """No names, or a name that is neither an IP nor an ASCII DNS name, is refused."""
    with pytest.raises(ValueError, match="server"):
        issue_server_cert(*ca, names)


@pytest.mark.parametrize("identity", [Identity("plant-7"), Identity("plant-7", "plants")])
def test_agent_cert_carries_identity(ca: tuple[bytes, bytes], identity: Identity) -> None:
    """An agent certificate verifies against the CA, has exactly the identity's URI SANs and
    clientAuth only, and reading it back gives the same Identity."""
    pem, _ = issue_agent_cert(*ca, identity)
    cert = load(pem)
    cert.verify_directly_issued_by(load(ca[0]))
    san = extension(cert, x509.SubjectAlternativeName).value
    assert [name.value for name in san] == identity.uris()
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert Identity.from_certificate(cert) == identity


def test_identity_uris() -> None:
    """An identity's URIs are the agent URI, then the group URI when there is a group."""
    assert Identity("a").uris() == ["bridgehead://agent/a"]
    assert Identity("a", "g").uris() == ["bridgehead://agent/a", "bridgehead://group/g"]


def test_csr_names_are_ignored(ca: tuple[bytes, bytes]) -> None:
    """Signing a CSR that asks for one identity gives a certificate naming the identity the
    relay chose instead, for the CSR's own key."""
    csr_pem, key_pem = create_csr(Identity("admin", "everything"))
    pem = sign_agent_csr(*ca, csr_pem, Identity("plant-7"))
    cert = load(pem)
    assert Identity.from_certificate(cert) == Identity("plant-7")
    assert extension(cert, x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    ) == ["bridgehead://agent/plant-7"]
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert cert.public_key() == key.public_key()


def test_tampered_csr_is_refused(ca: tuple[bytes, bytes]) -> None:
    """A CSR whose signed content was changed after signing is refused."""
    csr_pem, _ = create_csr(Identity("agent-aaaa"))
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    assert der.count(b"agent-aaaa") >= 1
    tampered = x509.load_der_x509_csr(der.replace(b"agent-aaaa", b"agent-bbbb"))
    with pytest.raises(ValueError, match="signature"):
        sign_agent_csr(*ca, tampered.public_bytes(serialization.Encoding.PEM), Identity("x"))


def test_csr_with_other_curve_is_refused(ca: tuple[bytes, bytes]) -> None:
    """A CSR for a key that is not ECDSA P-256 is refused."""
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ValueError, match="P-256"):
        sign_agent_csr(*ca, csr.public_bytes(serialization.Encoding.PEM), Identity("a"))


def test_wrong_ca_key_is_refused(ca: tuple[bytes, bytes]) -> None:
    """Signing with a key that does not belong to the CA certificate is refused."""
    _, other_key = create_ca()
    with pytest.raises(ValueError, match="does not belong"):
        issue_agent_cert(ca[0], other_key, Identity("a"))


@pytest.mark.parametrize(
    ("agent_id", "group", "bad"),
    [
        ("", None, "''"),
        ("-a", None, "'-a'"),
        ("a/b", None, "'a/b'"),
        ("a b", None, "'a b'"),
        ("a\n", None, "'a\\\\n'"),
        ("x" * 64, None, "'" + "x" * 64 + "'"),
        ("ok", "../etc", "'../etc'"),
        ("ok", "", "''"),
    ],
)
def test_bad_names_are_refused(agent_id: str, group: str | None, bad: str) -> None:
    """Agent ids and groups outside ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ are refused, naming the
    bad value."""
    with pytest.raises(ValueError, match=bad):
        Identity(agent_id, group)


def test_good_names_are_accepted() -> None:
    """The longest allowed id and ids with dots, dashes and underscores are accepted."""
    assert Identity("x" * 63, "G.1_b-c").group == "G.1_b-c"


def cert_with_uris(ca: tuple[bytes, bytes], uris: list[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = load(ca[0])
    ca_key = serialization.load_pem_private_key(ca[1], password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
    )
    if uris:
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        ([], "no agents"),
        (["bridgehead://group/g"], "no agents"),
        (["bridgehead://agent/a", "bridgehead://agent/b"], "2 agents"),
        (["bridgehead://agent/a", "bridgehead://group/g", "bridgehead://group/h"], "2 groups"),
        (["bridgehead://agent/a b"], "'a b'"),
    ],
)
def test_identity_from_bad_certificate(
    ca: tuple[bytes, bytes], uris: list[str], message: str
) -> None:
    """A certificate with no agent URI, two agent URIs, two groups or a malformed id gives no
    Identity but a ValueError saying why."""
    with pytest.raises(ValueError, match=message):
        Identity.from_certificate(cert_with_uris(ca, uris))


def test_validity_follows_the_injected_clock(ca: tuple[bytes, bytes]) -> None:
    """`now` and `days` set the validity window."""
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    pem, _ = issue_agent_cert(*ca, Identity("a"), days=10, now=now)
    assert load(pem).not_valid_after_utc == now + timedelta(days=10)
    assert load(pem).not_valid_before_utc <= now


def test_bad_clock_or_days_are_refused(ca: tuple[bytes, bytes]) -> None:
    """A naive `now` or a non-positive lifetime is refused."""
    with pytest.raises(ValueError, match="timezone"):
        create_ca(now=datetime(2030, 1, 1))  # a naive clock, on purpose
    with pytest.raises(ValueError, match="valid for some time"):
        issue_agent_cert(*ca, Identity("a"), days=0)


def test_write_key_pair_modes(tmp_path: Path, ca: tuple[bytes, bytes]) -> None:
    """The key file is written 0600 and the certificate 0644, creating folders, replacing old
    files and leaving no temporary files behind."""
    cert_path, key_path = tmp_path / "certs" / "agent.pem", tmp_path / "keys" / "agent.key"
    for _ in range(2):
        cert_pem, key_pem = issue_agent_cert(*ca, Identity("a"))
        write_key_pair(cert_path, key_path, cert_pem, key_pem)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert key_path.read_bytes() == key_pem
    assert cert_path.read_bytes() == cert_pem
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["agent.key", "agent.pem"]


# --- end to end: TLS 1.3 with the stdlib ssl module on 127.0.0.1 ---


@dataclass
class Relay:
    """A one-connection TLS 1.3 server requiring client certificates from `ca_pem`."""

    context: ssl.SSLContext
    listener: socket.socket
    identity: Identity | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    def serve_one(self) -> None:
        try:
            raw, _ = self.listener.accept()
            raw.settimeout(TIMEOUT)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                der = conn.getpeercert(binary_form=True)
                assert der is not None
                self.identity = Identity.from_certificate(x509.load_der_x509_certificate(der))
                conn.sendall(self.identity.agent_id.encode())
        except BaseException as error:  # handed to the test thread
            self.error = error

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()
        self.listener.close()


@pytest.fixture
def relay_files(tmp_path: Path, ca: tuple[bytes, bytes]) -> Path:
    cert_pem, key_pem = issue_server_cert(*ca, ["127.0.0.1", "localhost"])
    write_key_pair(tmp_path / "relay.pem", tmp_path / "relay.key", cert_pem, key_pem)
    return tmp_path


@pytest.fixture
def relay(relay_files: Path, ca: tuple[bytes, bytes]) -> Relay:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=ca[0].decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(relay_files / "relay.pem", relay_files / "relay.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    return Relay(context, listener)


def connect_agent(
    relay: Relay, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, folder: Path
) -> bytes:
    """Connect as an agent presenting `cert_pem`; return what the relay sent back."""
    write_key_pair(folder / "agent.pem", folder / "agent.key", cert_pem, key_pem)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(folder / "agent.pem", folder / "agent.key")
    with (
        socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        assert conn.version() == "TLSv1.3"
        return conn.recv(100)


def test_tls_agent_cert_is_accepted_and_identified(
    relay: Relay, ca: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """Over TLS 1.3 with strict X.509 checks on both sides, the agent verifies the relay's
    server certificate for 127.0.0.1, the relay accepts the agent's certificate, and reads the
    agent's Identity from the peer certificate."""
    cert_pem, key_pem = issue_agent_cert(*ca, Identity("plant-7", "plants"))
    answer = connect_agent(relay, ca[0], cert_pem, key_pem, tmp_path)
    relay.join()
    assert relay.error is None
    assert relay.identity == Identity("plant-7", "plants")
    assert answer == b"plant-7"


def refused(relay: Relay, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, folder: Path) -> str:
    """Connect with a certificate the relay must refuse; return the relay's error text."""
    try:
        answer = connect_agent(relay, ca_pem, cert_pem, key_pem, folder)
    except (ssl.SSLError, ConnectionError):
        answer = b""
    relay.join()
    assert answer == b""
    assert relay.identity is None
    assert isinstance(relay.error, ssl.SSLCertVerificationError)
    return str(relay.error)


def test_tls_cert_from_another_ca_is_refused(
    relay: Relay, ca: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """A client certificate issued by a different CA fails the relay's handshake."""
    other_ca = create_ca("Somebody else's CA")
    cert_pem, key_pem = issue_agent_cert(*other_ca, Identity("plant-7"))
    error = refused(relay, ca[0], cert_pem, key_pem, tmp_path)
    assert "unable to get local issuer certificate" in error


def test_tls_expired_cert_is_refused(relay: Relay, ca: tuple[bytes, bytes], tmp_path: Path) -> None:
    """A client certificate from the right CA whose validity ended is refused as expired."""
    past = datetime.now(UTC) - timedelta(days=30)
    cert_pem, key_pem = issue_agent_cert(*ca, Identity("plant-7"), days=1, now=past)
    error = refused(relay, ca[0], cert_pem, key_pem, tmp_path)
    assert "expired" in error


def test_tls_not_yet_valid_cert_is_refused(
    relay: Relay, ca: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """A client certificate from the right CA that only becomes valid later is refused."""
    future = datetime.now(UTC) + timedelta(days=30)
    cert_pem, key_pem = issue_agent_cert(*ca, Identity("plant-7"), days=1, now=future)
    error = refused(relay, ca[0], cert_pem, key_pem, tmp_path)
    assert "not yet valid" in error
