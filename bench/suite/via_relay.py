# Through the relay: bench/tunnel.py run as a process (one round of its own per round of
# the suite) with `--json FILE`; the figures issue 17 sets targets for, taken from that file.
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from figures import Figures
from procs import Procs

TUNNEL = Path(__file__).resolve().parent.parent / "tunnel.py"


def argv(out: Path, quick: bool) -> list[str]:
    sizes = (
        ["--rows", "20000", "--seconds", "3", "--single-seconds", "2"]
        if quick
        else ["--rows", "100000", "--seconds", "8", "--single-seconds", "3"]
    )
    return [sys.executable, "bench/tunnel.py", "--rounds", "1", *sizes, "--json", str(out)]


def measure(figures: Figures, procs: Procs, folder: Path, quick: bool, round_number: int) -> None:
    """bench/tunnel.py in a process group of its own (so its relay, agents, sshd and ssh are
    stopped with it, should the run be interrupted), then its figures."""
    out = folder / f"tunnel-{round_number}.json"
    name = f"tunnel-{round_number}"
    log = folder / f"{name}.log"
    process = procs.start(
        name,
        argv(out, quick),
        stop_signal=signal.SIGINT,
        cwd=TUNNEL.parent.parent,
        env={**os.environ, "TMPDIR": str(folder)},  # its temp folder goes with the run's
    )
    try:
        code = process.wait(900)
    finally:
        procs.stop(process)
    if code != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        raise RuntimeError(f"bench/tunnel.py failed (exit {code}):\n{tail}")
    record(figures, json.loads(out.read_text()))


def record(figures: Figures, got: dict) -> None:  # type: ignore[type-arg]
    paths = got["paths"]
    direct, relay = paths["direct"], paths["relay"]
    figures.add("relay CPU per small request", relay["cpu_ms_per_request"].get("relay", 0), "ms")
    figures.add(
        "agent CPU per small request (via relay)", relay["cpu_ms_per_request"].get("agent", 0), "ms"
    )
    figures.add("relay small GET req/s (c=64)", relay["rate"], "req/s")
    figures.add("direct small GET req/s (c=64)", direct["rate"], "req/s")
    figures.add("relay p50 added, c=1", relay["p50_single_ms"] - direct["p50_single_ms"], "ms")
    figures.add(
        "relay p50 added, half capacity", relay["p50_paced_ms"] - direct["p50_paced_ms"], "ms"
    )
    figures.add("relay bulk", relay["bulk_mb_s"], "MB/s")
    if got.get("ssh_skipped") or "ssh+TLS" not in paths:
        figures.skip("ssh -R", str(got.get("ssh_skipped")))
        return
    for name in ("ssh -R", "ssh+TLS"):
        figures.add(f"{name} small GET req/s (c=64)", paths[name]["rate"], "req/s")
        figures.add(f"{name} bulk", paths[name]["bulk_mb_s"], "MB/s")
        figures.add(f"relay/{name} small", relay["rate"] / paths[name]["rate"], "ratio")
        figures.add(f"relay/{name} bulk", relay["bulk_mb_s"] / paths[name]["bulk_mb_s"], "ratio")
