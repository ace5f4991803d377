# Streaming 1,000,000 rows from PostgreSQL through psqlODBC as NDJSON keeps the agent's
# memory flat: its peak RSS grows by a bounded amount, whatever the result's size.
from __future__ import annotations

import hashlib
import http.client
from pathlib import Path

import pytest
import yaml
from agentproc import AgentProcess, free_port
from conftest import make_backend

ROWS = 1_000_000
KEY = "memory-test-key"
BOUND_MIB = 64


def test_streaming_a_million_rows_keeps_memory_flat(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Peak RSS grows by less than 64 MiB while 1M rows x 6 columns stream out."""
    backend = make_backend("postgresql", request, tmp_path, "million")
    backend.run([
        "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(12,2), "
        "created TIMESTAMPTZ NOT NULL, flag BOOLEAN, ref UUID)",
        f"INSERT INTO big SELECT i, 'name ' || i, i / 100.0, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second', i % 2 = 0, "
        f"md5(i::text)::uuid FROM generate_series(1, {ROWS}) i",
    ])  # fmt: skip
    port = free_port()
    config = {
        "sources": {"db": backend.source},
        "resources": {"big": {"source": "db", "table": "big", "max_rows": ROWS}},
        "auth": {
            "api_keys": [
                {
                    "name": "t",
                    "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                    "scopes": ["big:read"],
                }
            ]
        },
        "listen": f"127.0.0.1:{port}",
        "admin": None,
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    agent = AgentProcess(tmp_path / "agent.yaml", port)
    try:
        assert agent.request("GET", "/v1/big?limit=1000", KEY)[0] == 200
        before = agent.peak_rss_kib()
        lines = stream_lines(port)
        after = agent.peak_rss_kib()
    finally:
        agent.stop()
    grew_mib = (after - before) / 1024
    print(f"peak RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB, +{grew_mib:.1f}")
    assert lines == ROWS
    assert grew_mib < BOUND_MIB


def stream_lines(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request(
        "GET",
        "/v1/big",
        headers={"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson"},
    )
    response = connection.getresponse()
    assert response.status == 200
    count = 0
    while chunk := response.read(1 << 16):
        count += chunk.count(b"\n")
    connection.close()
    return count


def test_named_query_stream_keeps_memory_flat(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A named query over 300,000 PostgreSQL rows streams through a server-side cursor."""
    backend = make_backend("postgresql", request, tmp_path, "query_stream")
    backend.run([
        "CREATE TABLE big AS SELECT i AS id, repeat('x', 200) AS pad "
        "FROM generate_series(1, 300000) i"
    ])  # fmt: skip
    port = free_port()
    sql = "SELECT id, pad FROM big WHERE id > :after ORDER BY id"
    config = {
        "sources": {"db": backend.source},
        "queries": {"all": {"source": "db", "sql": sql, "params": {"after": "integer"},
                            "max_rows": 1_000_000}},
        "auth": {"api_keys": [{"name": "t", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                               "scopes": ["queries:all"]}]},
        "listen": f"127.0.0.1:{port}",
        "admin": None,
    }  # fmt: skip
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    agent = AgentProcess(tmp_path / "agent.yaml", port)
    try:
        before = agent.peak_rss_kib()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request(
            "POST", "/v1/queries/all", body=b'{"after": 0}',
            headers={"Authorization": f"Bearer {KEY}", "Accept": "application/x-ndjson",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        response = connection.getresponse()
        lines = 0
        while chunk := response.read(1 << 16):
            lines += chunk.count(b"\n")
        connection.close()
        grew_mib = (agent.peak_rss_kib() - before) / 1024
    finally:
        agent.stop()
    print(f"named query stream: +{grew_mib:.1f} MiB peak RSS for {lines} rows (~70 MB of data)")
    assert lines == 300_000
    assert grew_mib < BOUND_MIB
