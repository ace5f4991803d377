# Item 12 of the security review: the caller port offers only AEAD suites (no CBC) and
# honours tls.min_version; off loopback, every path of the relay's admin port, /metrics
# included, needs the admin token, and such an address without a token is a config error.
from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from relaysec_kit import start_relay, tls_socket
from tunnelkit import Pki, relay_config

from bridgehead.common.config.document import ConfigError
from bridgehead.relay.admin import RelayMetrics, admin_app
from bridgehead.relay.config import RelayAdmin
from bridgehead.relay.registry import Registry

CBC_ONLY = (
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:AES128-SHA:AES256-SHA:AES128-SHA256"
)


def tls12_client(pki: Pki, ciphers: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


async def handshakes(relay: object, context: ssl.SSLContext) -> bool:
    try:
        _, writer = await tls_socket(relay, context)  # type: ignore[arg-type]
    except (ssl.SSLError, ConnectionError):
        return False
    writer.close()
    return True


async def test_the_caller_port_offers_no_cbc_suite(pki: Pki) -> None:
    """A TLS 1.2 client offering only CBC suites fails the handshake; one offering its
    defaults (AEAD among them) succeeds."""
    relay = await start_relay(pki)
    try:
        cbc = await asyncio.to_thread(tls12_client, pki, CBC_ONLY)
        default = await asyncio.to_thread(tls12_client, pki, None)
        results = (await handshakes(relay, cbc), await handshakes(relay, default))
    finally:
        await relay.stop()
    assert results == (False, True)


async def test_tls_min_version_refuses_older_clients(pki: Pki) -> None:
    """With tls.min_version 1.3, a client capped at TLS 1.2 fails the handshake."""
    tls = {"cert": str(pki.folder / "relay.pem"), "key": str(pki.folder / "relay.key"),
           "min_version": "1.3"}  # fmt: skip
    relay = await start_relay(pki, tls=tls)
    try:
        old = await asyncio.to_thread(tls12_client, pki, None)
        modern = await asyncio.to_thread(pki.caller_context)
        results = (await handshakes(relay, old), await handshakes(relay, modern))
    finally:
        await relay.stop()
    assert results == (False, True)


def test_a_non_loopback_admin_address_without_a_token_is_a_config_error(pki: Pki) -> None:
    """admin: 0.0.0.0:9471 without token_sha256 is refused at load, saying how to fix it."""
    with pytest.raises(ConfigError) as caught:
        relay_config(pki, "t", admin="0.0.0.0:9471")
    assert "needs a token" in str(caught.value)
    assert "token_sha256" in str(caught.value)


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/agents"])
async def test_off_loopback_every_admin_path_needs_the_admin_token(
    path: str, tmp_path: Path
) -> None:
    """An admin port configured on 10.1.2.3 answers `path` 401 without a token or with a
    wrong one, and 200 with the configured token or the state-file admin token."""
    configured = "configured-admin-token-0123456789"
    where = RelayAdmin.model_validate(
        {"address": "10.1.2.3:9471",
         "token_sha256": hashlib.sha256(configured.encode()).hexdigest()}
    )  # fmt: skip
    registry = Registry()
    app = admin_app(registry, RelayMetrics(registry), lambda _: None, "state-token", where)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        statuses = []
        for token in (None, "wrong", configured, "state-token"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with client.get(path, headers=headers) as response:
                statuses.append(response.status)
    assert statuses == [401, 401, 200, 200]


async def test_on_loopback_metrics_stay_open(tmp_path: Path) -> None:
    """On 127.0.0.1 the admin port's /metrics answers without a token, as before."""
    registry = Registry()
    where = RelayAdmin.model_validate("127.0.0.1:9471")
    app = admin_app(registry, RelayMetrics(registry), lambda _: None, "state-token", where)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/metrics")
        assert response.status == 200
