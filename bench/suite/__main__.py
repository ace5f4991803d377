# `bench/run [--quick] [--rounds N] [--out FILE]`: installs the peers, starts every contender
# on 127.0.0.1, runs the comparisons of issue 17 in turns for several rounds after a warm-up,
# and writes the report and its chart. Every process it started is stopped on the way out.
from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import data
import keyed
import light
import load
import peers
import report
import scale
import stream
import stream_pg
import via_relay
import writes
from dbservers import PASSWORD, USER, PostgresServer
from figures import Figures, turns
from procs import Procs, raise_on_signals
from servers import agent_loop, ceiling, datasette, pg_agent, sandman2, sqlite_agent

SUITE = Path(__file__).resolve().parent


@dataclass
class Run:
    """What the comparisons share: the settings, the folder, the processes, the figures."""

    args: argparse.Namespace
    folder: Path
    procs: Procs
    figures: Figures = field(default_factory=Figures)
    seconds: float = 10.0
    warm: float = 2.0
    customers: int = 100_000
    stream_rows: int = 1_000_000
    peers: dict[str, Path | str] = field(default_factory=dict)
    sqlite: list[tuple[str, load.Target, int | None]] = field(default_factory=list)
    pg: list[tuple[str, load.Target, int | None]] = field(default_factory=list)
    pg_base: str = ""
    connection_string: str = ""
    agent_loop: str = "asyncio"
    commands: list[str] = field(default_factory=list)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description="issue 17's benchmark suite")
    parser.add_argument("--quick", action="store_true", help="1 short round (CI)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick: 1)")
    parser.add_argument("--out", type=Path, help="the report (default: a temp path)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def install(run: Run) -> None:
    """The peers' environments, made side by side (pip waits mostly on the network)."""
    names = ("datasette", "sandman2", "chart")
    with ThreadPoolExecutor(len(names)) as pool:
        run.peers.update(zip(names, pool.map(peers.venv, names), strict=True))
    for name in names:
        if isinstance(run.peers[name], str):
            run.figures.skip(name, str(run.peers[name]))
    if why := peers.wrk():
        run.figures.skip("wrk", why)


def sqlite_contenders(run: Run, db: Path) -> None:
    """The ceiling (stdlib asyncio, and uvloop if the project's venv has it), the agent and
    Datasette, for the keyed GETs on SQLite."""
    n = run.customers
    run.agent_loop = agent_loop()
    run.figures.note("the agent's event loop", run.agent_loop)
    run.sqlite.append(("ceiling asyncio", keyed.ceiling(ceiling(run.procs, "asyncio"), n), None))
    if not importlib.util.find_spec("uvloop"):
        run.figures.skip("ceiling uvloop", "uvloop is not installed in the project's venv")
    else:
        try:
            fast = ceiling(run.procs, "uvloop")
        except RuntimeError as exc:
            run.figures.skip("ceiling uvloop", f"it did not start: {str(exc)[-300:]}")
        else:
            run.sqlite.append(("ceiling uvloop", keyed.ceiling(fast, n), None))
    process, base = sqlite_agent(run.procs, run.folder, db)
    run.sqlite.append(("Bridgehead keyed GET SQLite", keyed.bridgehead(base, n), process.pid))
    if isinstance(peer := run.peers["datasette"], Path):
        run.sqlite.append(
            ("Datasette row JSON", keyed.datasette(datasette(run.procs, peer, db), n), None)
        )
        run.commands.append(
            f"bench/.peers/datasette/bin/datasette serve {db.name} --host 127.0.0.1 -p PORT"
        )


def pg_contenders(run: Run, server: PostgresServer) -> None:
    n = run.customers
    process, run.pg_base = pg_agent(run.procs, run.folder, run.connection_string, run.stream_rows)
    run.pg.append(
        ("Bridgehead keyed GET PostgreSQL", keyed.bridgehead(run.pg_base, n), process.pid)
    )
    if isinstance(peer := run.peers["sandman2"], Path):
        try:
            base = sandman2(run.procs, peer, server.port, USER, PASSWORD)
        except RuntimeError as exc:
            run.figures.skip("sandman2", f"it did not start: {str(exc)[-300:]}")
        else:
            run.pg.append(("sandman2", keyed.sandman2(base, n), None))
            run.commands.append(
                "bench/.peers/sandman2/bin/sandman2ctl -l -p PORT "
                "postgresql+psycopg2://bridgehead:...@127.0.0.1:PGPORT/bench"
            )


def keyed_round(run: Run, number: int) -> None:
    """The SQLite contenders in turns; then the ceiling on the agent's own loop, by name."""
    for name, target, pid in turns(run.sqlite, number):
        keyed.measure(run.figures, name, target, run.folder, run.seconds, pid=pid)
    same = run.figures.values.get(f"ceiling {run.agent_loop} req/s")
    if same:
        run.figures.add("ceiling on the agent's loop req/s", same[-1], "req/s")


def pg_round(run: Run, number: int) -> None:
    contenders: list[Any] = [*run.pg, ("bare pyodbc 16 threads", None, None)]
    for name, target, pid in turns(contenders, number):
        if target is None:
            rate = keyed.bare_pyodbc(run.connection_string, run.customers, run.seconds)
            run.figures.add(f"{name} req/s", rate, "req/s")
        else:
            keyed.measure(run.figures, name, target, run.folder, run.seconds, pid=pid)


def comparisons(run: Run, sqlite_db: Path) -> list[tuple[str, Callable[[int], None]]]:
    f, folder, quick = run.figures, run.folder, run.args.quick
    return [
        ("keyed GET, SQLite", lambda n: keyed_round(run, n)),
        ("keyed GET, PostgreSQL", lambda n: pg_round(run, n)),
        (
            "NDJSON from PostgreSQL",
            lambda n: stream.measure(
                f, run.procs, folder, run.connection_string, run.stream_rows, round_number=n
            ),
        ),
        (
            "through the relay (bench/tunnel.py)",
            lambda n: via_relay.measure(f, run.procs, folder, quick, n),
        ),
        (
            "writes, PostgreSQL",
            lambda n: writes.measure(
                f, folder, run.pg_base, run.connection_string, run.seconds, round_number=n
            ),
        ),
        (
            "light: start and idle RSS, SQLite",
            lambda n: light.measure(f, run.procs, folder, sqlite_db, n),
        ),
    ]


def warm_up(run: Run) -> None:
    print(f"warm-up: {run.warm:g} s per wrk target ...", flush=True)
    for _name, target, _pid in [*run.sqlite, *run.pg]:
        keyed.warm(target, run.folder, run.warm)
    keyed.bare_pyodbc(run.connection_string, run.customers, run.warm)


def rounds(run: Run, sqlite_db: Path) -> None:
    steps = comparisons(run, sqlite_db)
    for number in range(run.args.rounds):
        print(f"round {number + 1}/{run.args.rounds}", flush=True)
        for title, step in turns(steps, number):
            print(f"  {title}", flush=True)
            try:
                step(number)
            except (RuntimeError, OSError, AssertionError, subprocess.SubprocessError) as exc:
                run.figures.skip(title, f"failed in round {number + 1}: {str(exc)[-400:]}")


def scale_step(run: Run) -> None:
    """Once, after the rounds: many streams over one tunnel connection, many agents."""
    streams, agents = (200, 10) if run.args.quick else (1000, 100)
    print(f"scale (once): {streams:,} concurrent streams, then {agents} agents", flush=True)
    for title, step in (
        (
            "scale: streams",
            lambda: scale.streams(run.figures, run.procs, run.folder / "s", streams),
        ),
        ("scale: agents", lambda: scale.agents(run.figures, run.procs, run.folder / "a", agents)),
    ):
        try:
            step()
        except (RuntimeError, OSError, AssertionError, subprocess.SubprocessError) as exc:
            run.figures.skip(title, f"failed: {str(exc)[-400:]}")
    run.commands.append(f"scale: {streams} streams over 1 tunnel connection; {agents} agents")


def prepare(run: Run, server: PostgresServer) -> Path:
    """The data and the contenders; the SQLite file."""
    print(
        f"data: {run.customers:,} customers (SQLite and PostgreSQL), {run.stream_rows:,} "
        "rows to stream ...",
        flush=True,
    )
    sqlite_db = run.folder / "customers.db"
    data.sqlite_customers(sqlite_db, run.customers)
    server.create_database("bench")
    run.connection_string = server.odbc_connection_string("bench")
    data.pg_tables(run.connection_string, run.customers)
    stream_pg.load(run.connection_string, run.stream_rows)
    print("starting the contenders ...", flush=True)
    sqlite_contenders(run, sqlite_db)
    pg_contenders(run, server)
    return sqlite_db


def execute(run: Run) -> None:
    install(run)
    if "wrk" in run.figures.skipped:
        raise SystemExit(f"skipped everything: wrk: {run.figures.skipped['wrk']}")
    with PostgresServer() as server:
        sqlite_db = prepare(run, server)
        warm_up(run)
        rounds(run, sqlite_db)
        run.procs.stop_all()
    scale_step(run)


def finish(run: Run, began: float) -> None:
    out = run.args.out or Path(tempfile.mkdtemp(prefix="bench-report-")) / "benchmarks.md"
    kind = "quick (--quick: 1 short round)" if run.args.quick else f"{run.args.rounds} rounds"
    title = (
        f"One run of `bench/run`, {kind}, {run.seconds:g} s per wrk contender per round, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.time() - began:.0f} s in all."
    )
    commands = [
        f"bench/run {shlex.join(sys.argv[1:])}".strip(),
        load.command(),
        *run.commands,
        shlex.join(via_relay.argv(Path("FILE.json"), run.args.quick)[1:]),
        '.venv/bin/python -c "$CEILING" PORT asyncio  # servers.CEILING: a minimal aiohttp app',
        ".venv/bin/python -m bridgehead.agent.cli run -c agent-*.yaml  # each agent",
        *peer_pins(),
    ]
    notes = [
        "- Each keyed-GET contender: `GET <path>/{random id in 1..N}` from a wrk Lua script; "
        "Bridgehead with rate limits set out of the way and an API key; agent CPU per request "
        "from /proc during the wrk run.",
        "- bare pyodbc: 16 threads, each on its own psqlODBC connection, keyed lookups back "
        "to back.",
        "- NDJSON: bench/stream_pg.py's functions (its bare `fetchmany(5000)` and its HTTP "
        "reader), a fresh agent per round.",
        "- through the relay: bench/tunnel.py with one round of its own per round (c=64, "
        "the paced rate at half the slowest path's capacity, c=1, bulk NDJSON).",
        "- NDJSON through the relay: the same `big` table through a fresh relay and agent "
        "(one tunnel connection) per round, read over HTTPS from the relay; the ratio is to "
        "the same round's bare fetchmany.",
        "- scale: measured once, after the rounds (not in turns): NDJSON streams held open "
        "through the relay on one tunnel connection, RSS growth divided by the streams open; "
        "agents with one tunnel connection each, relay RSS growth divided by the agents, then "
        "the relay stopped and started on the same ports.",
        report.environment_note(),
    ]
    ratios = report.write(out, run.figures, commands, notes, title)
    print(f"report: {out}")
    chart(run, ratios, out.with_suffix(".png"), title)


def peer_pins() -> list[str]:
    return [f"# {name}: pip install {' '.join(pins)}" for name, pins in peers.REQUIREMENTS.items()]


def chart(run: Run, ratios: list[dict[str, object]], png: Path, title: str) -> None:
    peer = run.peers.get("chart")
    if not isinstance(peer, Path):
        print(f"chart: skipped: {peer}")
        return
    source = run.folder / "ratios.json"
    source.write_text(__import__("json").dumps({"ratios": ratios, "title": title}))
    argv = [str(peer / "bin/python"), str(SUITE / "chart.py"), str(source), str(png)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    print(f"chart: {png}" if done.returncode == 0 else f"chart: failed: {done.stderr[-300:]}")


def summary(figures: Figures) -> None:
    print("\n== figures (median, min-max over the rounds) ==")
    for name in figures.values:
        median, low, high = figures.spread(name) or (0.0, 0.0, 0.0)
        print(
            f"  {name}: {report.number(median)} ({report.number(low)}-{report.number(high)}) "
            f"{figures.units[name]}"
        )
    for name, why in figures.skipped.items():
        print(f"  {name}: skipped: {why}")


def main(argv: list[str]) -> int:
    args = parse(argv)
    raise_on_signals()
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
        run = Run(args, Path(folder), Procs(Path(folder)))
        run.figures.commit = report.commit()
        if args.quick:
            run.seconds, run.warm, run.customers, run.stream_rows = 3.0, 1.0, 20_000, 50_000
        try:
            execute(run)
            summary(run.figures)
            finish(run, began)
        except KeyboardInterrupt:
            print("\ninterrupted; stopping every process this run started", file=sys.stderr)
            return 130
        finally:
            run.procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
