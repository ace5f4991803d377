# How light the agent is on SQLite: the time from starting `bridgehead run` until its admin
# `/readyz` answers 200, and its resident memory once idle a second later.
from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from figures import Figures
from procs import Procs, free_port
from servers import agent_argv, agent_config


def ready(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def measure(figures: Figures, procs: Procs, folder: Path, db: Path, round_number: int) -> None:
    admin = free_port()
    resources = {"customers": {"source": "db", "table": "customers", "key": ["id"]}}
    config, _ = agent_config(
        folder,
        f"agent-light-{round_number}",
        {"sqlite": str(db)},
        resources,
        ["customers:read"],
        admin=f"127.0.0.1:{admin}",
    )
    began = time.perf_counter()
    process = procs.start(config.stem, agent_argv(config))
    try:
        procs.wait_ready(process, lambda: ready(admin), config.stem)
        figures.add("start to ready (/readyz 200)", time.perf_counter() - began, "s")
        time.sleep(1.0)
        figures.add("idle RSS", rss_mib(process.pid), "MiB")
    finally:
        procs.stop(process)
