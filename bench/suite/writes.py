# Writes on PostgreSQL: single-row POSTs with a fresh Idempotency-Key each (wrk, c=16), and
# 1,000-row batches (a POST of a JSON array) one after another, against the bare bound: a
# pyodbc `executemany` of 1,000 rows, committed, on one connection.
from __future__ import annotations

import http.client
import json
import statistics
import time
import uuid
from pathlib import Path

import load
import pyodbc
from data import INSERT, write_row
from figures import Figures
from servers import TOKEN

BATCH = 1000


def single(base: str) -> load.Target:
    body = json.dumps(write_row(1))
    headers = (("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "application/json"))
    return load.Target(
        base,
        "/v1/w",
        method="POST",
        headers=headers,
        body=body,
        unique_header="Idempotency-Key",
        prefix=uuid.uuid4().hex[:12],
    )


def agent_batches(port: int, seconds: float) -> tuple[float, float]:
    """(rows/s, p50 ms per batch) of 1,000-row POSTs sent back to back for `seconds`."""
    body = json.dumps([write_row(i) for i in range(BATCH)]).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    took: list[float] = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or not took:
        sent = time.perf_counter()
        connection.request("POST", "/v1/w", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        assert response.status in (200, 201), (response.status, answer[:300])
        took.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - began
    connection.close()
    return len(took) * BATCH / elapsed, statistics.median(took) * 1000


def bare_batches(connection_string: str, seconds: float) -> tuple[float, float]:
    """(rows/s, p50 ms per batch) of pyodbc executemany of 1,000 rows, each batch committed."""
    db = pyodbc.connect(connection_string, autocommit=False)
    cursor = db.cursor()
    rows = [tuple(write_row(i).values()) for i in range(BATCH)]
    took: list[float] = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or not took:
        sent = time.perf_counter()
        cursor.executemany(INSERT, rows)
        db.commit()
        took.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - began
    db.close()
    return len(took) * BATCH / elapsed, statistics.median(took) * 1000


def measure(
    figures: Figures,
    folder: Path,
    base: str,
    connection_string: str,
    seconds: float,
    *,
    round_number: int,
) -> None:
    port = int(base.rsplit(":", 1)[1])
    result = load.run(single(base), folder, seconds)
    figures.add("POST single (Idempotency-Key) req/s", result.rate, "req/s")
    figures.add("POST single (Idempotency-Key) p50", result.p50_ms, "ms")
    if result.errors:
        figures.add("POST single errors", result.errors, "requests")
    got = {}
    order = ["bare", "agent"] if round_number % 2 == 0 else ["agent", "bare"]
    for which in order:
        if which == "bare":
            got["bare"] = bare_batches(connection_string, seconds)
        else:
            got["agent"] = agent_batches(port, seconds)
    figures.add("POST 1,000-row batch rows/s", got["agent"][0], "rows/s")
    figures.add("POST 1,000-row batch p50", got["agent"][1], "ms")
    figures.add("bare executemany 1,000 rows rows/s", got["bare"][0], "rows/s")
    figures.add("bare executemany 1,000 rows p50", got["bare"][1], "ms")
    figures.add("batch agent/executemany", got["agent"][0] / got["bare"][0], "ratio")
