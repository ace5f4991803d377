# NDJSON from PostgreSQL, with bench/stream_pg.py's own functions: its 6-column `big` table,
# its bare `fetchmany(5000)` baseline and its HTTP reader; a fresh agent (stream_pg's config)
# per round, so each round's peak-RSS growth starts from an agent that has streamed nothing;
# and the same stream through the relay (stream_relay.py).
from __future__ import annotations

from pathlib import Path

import stream_pg
import stream_relay
from figures import Figures
from procs import Procs, accepts, free_port
from servers import agent_argv


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1])


def through_agent(
    procs: Procs, folder: Path, connection_string: str, rows: int
) -> tuple[float, float]:
    """(rows/s, peak-RSS growth in MiB) of one agent's NDJSON stream of `big`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = stream_pg.agent_config(folder, connection_string, rows, port)
    process = procs.start("agent-ndjson", agent_argv(config))
    try:
        procs.wait_ready(process, lambda: accepts(port), "agent-ndjson")
        before = peak_rss_kib(process.pid)
        lines, seconds = stream_pg.through_agent(port)
        grew = (peak_rss_kib(process.pid) - before) / 1024
    finally:
        procs.stop(process)
    assert lines == rows, (lines, rows)
    return lines / seconds, grew


def bare(connection_string: str, rows: int) -> float:
    count, seconds = stream_pg.bare_fetchmany(connection_string)
    assert count == rows, (count, rows)
    return count / seconds


def measure(
    figures: Figures,
    procs: Procs,
    folder: Path,
    connection_string: str,
    rows: int,
    *,
    round_number: int,
) -> None:
    """Both, in turns by round; and their ratio in this round."""
    got: dict[str, float] = {}
    order = ["bare", "agent"] if round_number % 2 == 0 else ["agent", "bare"]
    for which in order:
        if which == "bare":
            got["bare"] = bare(connection_string, rows)
        else:
            got["agent"], grew = through_agent(
                procs, folder / f"ndjson-{round_number}", connection_string, rows
            )
            figures.add("NDJSON agent peak-RSS growth", grew, "MiB")
    figures.add("NDJSON bare fetchmany rows/s", got["bare"], "rows/s")
    figures.add("NDJSON agent rows/s", got["agent"], "rows/s")
    figures.add("NDJSON agent/fetchmany", got["agent"] / got["bare"], "ratio")
    relayed = stream_relay.through_relay(
        procs, folder / f"ndjson-relay-{round_number}", connection_string, rows
    )
    figures.add("NDJSON via relay rows/s", relayed, "rows/s")
    figures.add("NDJSON via relay/fetchmany", relayed / got["bare"], "ratio")
