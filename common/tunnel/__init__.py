"""What both ends of the tunnel share: the HTTP/2 wire rules, the sans-IO sessions (the
agent's server, the relay's client), liveness, outbox, backoff."""

ALPN = "bridgehead-tunnel/1"
"""The tunnel protocol's version, agreed by TLS ALPN; a peer without it is refused."""
