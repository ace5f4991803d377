# Keyed single-row reads at c=16: `GET /v1/customers/{random id}` by wrk against the framework
# ceiling, Bridgehead (SQLite, PostgreSQL), Datasette and sandman2; and the bare-driver bound,
# 16 threads each doing keyed lookups on its own pyodbc connection.
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import load
import pyodbc
from data import LOOKUP
from figures import Figures
from servers import TOKEN

AUTH = (("Authorization", f"Bearer {TOKEN}"),)


def bridgehead(base: str, keys: int) -> load.Target:
    return load.Target(base, "/v1/customers/", keys=keys, headers=AUTH)


def ceiling(base: str, keys: int) -> load.Target:
    return load.Target(base, "/v1/customers/", keys=keys)


def origin_and_path(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path


def datasette(base: str, keys: int) -> load.Target:
    """`base` is the table's URL: its rows' JSON are at base/{id}.json."""
    origin, path = origin_and_path(base)
    return load.Target(origin, f"{path}/", ".json", keys=keys)


def sandman2(base: str, keys: int) -> load.Target:
    """`base` is the resource's URL: its rows are at base/{id}."""
    origin, path = origin_and_path(base)
    return load.Target(origin, f"{path}/", keys=keys)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    figures: Figures,
    name: str,
    target: load.Target,
    folder: Path,
    seconds: float,
    *,
    pid: int | None = None,
) -> None:
    """One wrk run: `name req/s` and `name p50`; with `pid`, that process's CPU per request."""
    before = cpu_seconds(pid) if pid else 0.0
    result = load.run(target, folder, seconds)
    figures.add(f"{name} req/s", result.rate, "req/s")
    figures.add(f"{name} p50", result.p50_ms, "ms")
    if pid and result.rate:
        used = cpu_seconds(pid) - before
        figures.add(f"{name} agent CPU", used / (result.rate * seconds) * 1000, "ms")
    if result.errors:
        figures.add(f"{name} errors", result.errors, "requests")


def warm(target: load.Target, folder: Path, seconds: float) -> None:
    load.run(target, folder, seconds)


def bare_pyodbc(connection_string: str, keys: int, seconds: float, threads: int = 16) -> float:
    """Keyed lookups per second by `threads` threads, each on its own connection."""
    connections = [pyodbc.connect(connection_string, autocommit=True) for _ in range(threads)]
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    until = [0.0]

    def loop(number: int) -> None:
        cursor = connections[number].cursor()
        draw = random.Random(number).randint  # noqa: S311 - picks keys, not secrets
        start.wait()
        while time.perf_counter() < until[0]:
            cursor.execute(LOOKUP, draw(1, keys)).fetchone()
            counts[number] += 1

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    until[0] = began + seconds
    start.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    for connection in connections:
        connection.close()
    return sum(counts) / elapsed
