"""The tunnel: outbound mutual-TLS HTTP/2 connections from the agent to the relay."""
