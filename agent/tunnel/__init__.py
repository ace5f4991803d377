"""The tunnel: outbound mutual-TLS HTTP/2 connections from the agent to the relay."""

ALPN = "bridgehead-tunnel/1"
"""The tunnel protocol's version, agreed by TLS ALPN; a peer without it is refused."""
