# The relay's small PKI: the agents' CA, the relay's server certificate, agent CSRs and agent
# certificates, and the Identity an agent certificate carries (URI SANs `bridgehead://agent/ID`
# and optionally `bridgehead://group/GROUP`).
# Rules: `cryptography` only; ECDSA P-256 keys and SHA-256 signatures throughout; PEM bytes in and
# out, so callers decide where things live; the clock is passed in (`now`) so tests can make
# expired or not-yet-valid certificates without sleeping; the relay, never the CSR, decides who an
# agent is; every private key file is written through `keyfiles.write_private` (0600, atomic).
from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridgehead.certs.keyfiles import write_private, write_public
from bridgehead.common import failpoints
from bridgehead.common.files import fsync_folder

AGENT_URI_PREFIX = "bridgehead://agent/"
GROUP_URI_PREFIX = "bridgehead://group/"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
CLOCK_SKEW = timedelta(minutes=5)  # certificates start a little early to allow for clock drift


def check_name(kind: str, value: str) -> str:
    """`value` if it is a valid agent id or group name; ValueError naming it otherwise."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{kind} {value!r} is not valid: use 1 to 63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class Identity:
    """Who an agent is, as its certificate says: its id and, optionally, its group."""

    agent_id: str
    group: str | None = None

    def __post_init__(self) -> None:
        check_name("agent id", self.agent_id)
        if self.group is not None:
            check_name("group", self.group)

    def uris(self) -> list[str]:
        """The URI SANs naming this identity, the agent's first."""
        uris = [AGENT_URI_PREFIX + self.agent_id]
        if self.group is not None:
            uris.append(GROUP_URI_PREFIX + self.group)
        return uris

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> Identity:
        """The identity named by the certificate's URI SANs; ValueError if it names none or two."""
        uris = _uri_sans(cert)
        agents = [u.removeprefix(AGENT_URI_PREFIX) for u in uris if u.startswith(AGENT_URI_PREFIX)]
        groups = [u.removeprefix(GROUP_URI_PREFIX) for u in uris if u.startswith(GROUP_URI_PREFIX)]
        if len(agents) != 1:
            found = "no" if not agents else f"{len(agents)}"
            raise ValueError(
                f"the certificate names {found} agents; an agent certificate must carry exactly "
                f"one {AGENT_URI_PREFIX}ID URI SAN"
            )
        if len(groups) > 1:
            raise ValueError(
                f"the certificate names {len(groups)} groups; an agent certificate may carry at "
                f"most one {GROUP_URI_PREFIX}GROUP URI SAN"
            )
        return cls(agents[0], groups[0] if groups else None)


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.UniformResourceIdentifier)


def create_ca(
    common_name: str = "Bridgehead agents CA", *, days: int = 3650, now: datetime | None = None
) -> tuple[bytes, bytes]:
    """A new self-signed CA for agent certificates: (cert PEM, key PEM)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _validity(x509.CertificateBuilder(), days, now)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _cert_pem(builder.sign(key, hashes.SHA256())), _key_pem(key)


def issue_server_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    names: Sequence[str],
    *,
    days: int = 397,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A server certificate for the relay, valid for `names` (DNS names or IPs): (cert, key)."""
    if isinstance(names, str) or not names:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    sans = [_general_name(name) for name in names]
    key = _new_key()
    builder = (
        _leaf_builder(ca_cert_pem, key.public_key(), names[0], days, now)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return _sign(builder, ca_cert_pem, ca_key_pem), _key_pem(key)


def _general_name(name: str) -> x509.GeneralName:
    with contextlib.suppress(ValueError):
        return x509.IPAddress(ipaddress.ip_address(name))
    if not name or not name.isascii() or any(c.isspace() for c in name):
        raise ValueError(
            f"server name {name!r} is not a DNS name or IP address; "
            "write internationalised names in their xn-- form"
        )
    return x509.DNSName(name)


def create_csr(identity: Identity) -> tuple[bytes, bytes]:
    """A new agent key and a CSR asking for `identity`: (CSR PEM, key PEM)."""
    key = _new_key()
    uris: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in identity.uris()]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.agent_id)]))
        .add_extension(x509.SubjectAlternativeName(uris), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def sign_agent_csr(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    csr_pem: bytes,
    identity: Identity,
    *,
    days: float = 90,
    now: datetime | None = None,
) -> bytes:
    """An agent certificate for the CSR's key naming exactly `identity` (the CSR's names are
    ignored: the relay decides who the agent is). ValueError if the CSR is not validly signed
    or its key is not ECDSA P-256."""
    public_key = csr_public_key(csr_pem)
    uris: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in identity.uris()]
    builder = (
        _leaf_builder(ca_cert_pem, public_key, identity.agent_id, days, now)
        .add_extension(x509.SubjectAlternativeName(uris), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return _sign(builder, ca_cert_pem, ca_key_pem)


def csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The key a CSR asks to certify; ValueError unless it is validly signed ECDSA P-256."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise ValueError("the certificate request is not a PEM CSR; make a new one") from None
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature does not verify; make a new one")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise ValueError("the certificate request's key must be ECDSA P-256")
    return public_key


def issue_agent_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    identity: Identity,
    *,
    days: float = 90,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A new agent key and its certificate for `identity`, in one step: (cert PEM, key PEM)."""
    csr_pem, key_pem = create_csr(identity)
    cert_pem = sign_agent_csr(ca_cert_pem, ca_key_pem, csr_pem, identity, days=days, now=now)
    return cert_pem, key_pem


def write_key_pair(cert_path: Path, key_path: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Replace a certificate and its key together: a process killed part-way leaves the old
    pair or the new one, never a key beside another key's certificate.

    Both new files are first written durably as `NAME.next` (the key, then the certificate,
    whose presence marks the pair complete); then each is renamed over the old one. A kill
    between those renames leaves `.next` files that `finish_key_pair`, called before a pair
    is read, renames into place."""
    write_private(_next(key_path), key_pem)
    write_public(_next(cert_path), cert_pem)
    failpoints.reach("pair-written")
    finish_key_pair(cert_path, key_path)


def finish_key_pair(cert_path: Path, key_path: Path) -> None:
    """Complete a `write_key_pair` that was cut short; drop a half-written one."""
    if _next(cert_path).exists():
        if _next(key_path).exists():
            os.replace(_next(key_path), key_path)
            failpoints.reach("key-replaced")
        os.replace(_next(cert_path), cert_path)
        fsync_folder(cert_path.parent)
        if key_path.parent != cert_path.parent:
            fsync_folder(key_path.parent)
    elif _next(key_path).exists():  # killed before the pair was complete
        _next(key_path).unlink()  # (only then: a read-only folder refuses even a no-op unlink)


def _next(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _validity(
    builder: x509.CertificateBuilder, days: float, now: datetime | None
) -> x509.CertificateBuilder:
    if days <= 0:
        raise ValueError(f"a certificate must be valid for some time, not {days} days")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware (for example datetime.now(UTC))")
    return builder.not_valid_before(now - CLOCK_SKEW).not_valid_after(now + timedelta(days=days))


def _leaf_builder(
    ca_cert_pem: bytes,
    public_key: ec.EllipticCurvePublicKey,
    common_name: str,
    days: float,
    now: datetime | None,
) -> x509.CertificateBuilder:
    """The parts every certificate the CA issues shares: names, validity, key and extensions."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        _validity(x509.CertificateBuilder(), days, now)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )


def _sign(builder: x509.CertificateBuilder, ca_cert_pem: bytes, ca_key_pem: bytes) -> bytes:
    """Sign with the CA key, after checking that it is the CA certificate's own key."""
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an ECDSA P-256 private key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    if ca_cert.public_key() != ca_key.public_key():
        raise ValueError("the CA key does not belong to the CA certificate; check the ca paths")
    return _cert_pem(builder.sign(ca_key, hashes.SHA256()))


def previous(path: Path) -> Path:
    """Where a renewal keeps the pair it replaced until the new one has connected."""
    return path.with_name(path.name + ".previous")


def keep_previous(cert_path: Path, key_path: Path) -> None:
    """Copy the pair in use to `NAME.previous` (unless a pair is kept there already: that
    one is the last known to have connected)."""
    if previous(cert_path).exists() and previous(key_path).exists():
        return
    write_private(previous(key_path), key_path.read_bytes())
    write_public(previous(cert_path), cert_path.read_bytes())


def drop_previous(cert_path: Path, key_path: Path) -> bool:
    """Remove a kept previous pair; whether there was one."""
    existed = previous(cert_path).exists() or previous(key_path).exists()
    previous(cert_path).unlink(missing_ok=True)
    previous(key_path).unlink(missing_ok=True)
    return existed
