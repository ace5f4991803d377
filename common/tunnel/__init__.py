"""The tunnel's wire rules both ends share: HTTP/2 settings, liveness, outbox, backoff."""

ALPN = "bridgehead-tunnel/1"
"""The tunnel protocol's version, agreed by TLS ALPN; a peer without it is refused."""
