"""Adapters connect Bridgehead to databases: one protocol, a dialect per DBMS, plugin-registered."""
