"""Benchmark: what the tunnel costs. The agent reached directly, through the relay, and through
`ssh -R`, all in one run on this machine.

It builds a SQLite table `t` (100,000 rows x 6 columns) and a throwaway PKI in a temp folder,
then starts the relay and the agent as two separate processes. The agent has a `tunnel:`
section with 2 connections to the relay. The load generator (aiohttp, one TCPConnector)
runs in this process. It measures:

- small `GET /v1/t/{key}` at concurrency 64, back to back, for a fixed time: requests/s and
  p50/p99 latency. Every path is saturated here, so its latency is mostly queueing: the
  slower path's p50 is longer by about 64 / its rate;
- the same GET by up to 64 callers at a fixed rate (half the slowest path's saturated rate,
  `--paced`), each request sent when due: p50/p99 latency below saturation, timed from when
  each request fell due, so waiting for a free caller counts;
- the same GET one at a time (concurrency 1): latency without queueing;
- a bulk NDJSON export of the whole table (`Accept: application/x-ndjson`): MB/s, the best
  of the rounds.

Each is measured (a) direct to the agent's local listener, (b) through the relay
(`https://127.0.0.1:PORT/agents/plant-7/v1/...`, trusting the bench CA), and through an
`ssh -R` port forward over a throwaway sshd on 127.0.0.1, the classic alternative, twice:
(c) "ssh -R" forwards plain HTTP, so the caller gets no TLS, and (d) "ssh+TLS" forwards to
a second agent that serves HTTPS, so the caller gets TLS as from the relay. If OpenSSH is
missing it is installed with apt-get; if that fails, (c) and (d) are skipped. The run prints
the ratios relay/direct and relay/ssh next to the targets. The paths take turns (3 rounds by
default), so a change in the machine's load falls on all of them. All traffic stays on
127.0.0.1. Run from the repository root:

    .venv/bin/python bench/tunnel.py [--rows 100000] [--seconds 10] [--concurrency 64] [--no-ssh]
                                     [--json FILE]

`--json FILE` also writes the figures to FILE as JSON (bench/run reads it), per path: req/s,
p50/p99 in ms, MB/s and CPU ms per request by process; and the fixed rate of the paced runs.

The load generator, relay, agents, sshd and ssh all share the machine's cores, so each path's
figure includes the CPU that the processes on that path burn. The CPU each process used
(1.00 = one core) is printed per path, and so is "others", the rest of the machine's work,
which makes the figures noisy when it is high. Every process started here is stopped on
the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import hashlib
import itertools
import os
import random
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from agentproc import AgentProcess, free_port, listening, stop_process
from tunnelkit import Pki, make_pki, relay_config, tunnel_section

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"  # noqa: S105 - a throwaway relay caller token = the agent key
AGENT_ID = "plant-7"  # tunnelkit's relay config lets the caller with TOKEN reach this agent
WARM_UP = 0.5
T = TypeVar("T")
RELAY_RUNNER = """
import asyncio, logging, signal, sys
from pathlib import Path
from bridgehead.relay.app import Relay
from bridgehead.relay.config import load_relay_config

async def main():
    relay = Relay(load_relay_config(Path(sys.argv[1])))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await relay.start()
    try:
        await stop.wait()
    finally:
        await relay.stop()

logging.basicConfig(level=logging.WARNING)
asyncio.run(main())
"""


# --- the data, the configs, the processes ---------------------------------------------------


def make_db(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount DECIMAL(12,2), "
        "created TEXT NOT NULL, flag INTEGER, note TEXT)"
    )
    db.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
        (
            (i, f"name {i}", f"{i / 100:.2f}", f"2024-01-01T00:{i // 60 % 60:02}:{i % 60:02}Z",
             i % 2, f"note for row {i}")
            for i in range(1, rows + 1)
        ),
    )  # fmt: skip
    db.commit()
    db.close()


def write_agent_config(
    folder: Path, rows: int, listen: str | dict[str, Any], tunnel: dict[str, Any] | None, name: str
) -> Path:
    config = {
        "sources": {"db": {"sqlite": str(folder / "t.db")}},
        "resources": {"t": {"source": "db", "table": "t", "key": ["id"], "max_rows": rows}},
        "auth": {
            "api_keys": [
                {"name": "bench", "key_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                 "scopes": ["t:read"]}
            ]
        },
        "listen": listen,
        "admin": None,
        "state_dir": str(folder / f"{name}-state"),
        "limits": {"requests_per_second": 1e9, "burst": 10**9},  # measure the path, not the limiter
        "tunnel": tunnel,
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def relay_command(config: Path) -> list[str]:
    """`bridgehead-relay run -c` if this build has it, else a few lines around `Relay`."""
    probe = subprocess.run(
        [sys.executable, "-m", "bridgehead.relay.cli", "run", "--help"],
        capture_output=True,
        check=False,
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "bridgehead.relay.cli", "run", "-c", str(config)]
    return [sys.executable, "-c", RELAY_RUNNER, str(config)]


def start(command: list[str], log: Path, stack: contextlib.ExitStack) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    stack.callback(stop_process, process)
    return process


def drain(stream: IO[bytes] | None, sink: Path) -> None:
    """Copy a child's piped stderr to a file, so its per-request log lines never block it."""

    if stream is None:
        return
    fd = stream.fileno()

    def pump() -> None:
        with sink.open("wb") as out, contextlib.suppress(OSError, ValueError):
            while chunk := os.read(fd, 1 << 16):
                out.write(chunk)

    threading.Thread(target=pump, daemon=True).start()


def wait_until(check: Callable[[], bool], what: str, process: Any, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited\n{tail(log)}")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not ready within 30 s\n{tail(log)}")


def tunnels_up(admin_port: int) -> bool:
    url = f"http://127.0.0.1:{admin_port}/agents"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - 127.0.0.1
        agents = orjson.loads(response.read())["agents"]
    return any(a["agent_id"] == AGENT_ID and a["connections"] == 2 for a in agents)


def tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


# --- ssh -R, the classic alternative ---------------------------------------------------------


def sshd_binary() -> str | None:
    found = shutil.which("sshd")
    return found or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def ensure_openssh() -> str | None:
    """None once sshd and ssh are there; else why the ssh comparison is skipped."""
    if sshd_binary() and shutil.which("ssh"):
        return None
    if os.geteuid() != 0:
        return "sshd/ssh are missing and installing them needs root"
    print("installing OpenSSH (apt-get install -y openssh-server openssh-client) ...", flush=True)
    if not Path("/usr/sbin/policy-rc.d").exists():
        print("note: without /usr/sbin/policy-rc.d the package may start the system's sshd too")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "openssh-server", "openssh-client"]
    why = ""
    for attempt in (install, ["apt-get", "update", "-q"], install):
        try:
            done = subprocess.run(attempt, env=env, capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
            break
        why = done.stderr.decode(errors="replace")[-300:]
        if attempt is install and done.returncode == 0:
            break
    if sshd_binary() and shutil.which("ssh"):
        return None
    return f"OpenSSH could not be installed: {why}"


def start_ssh_forward(
    folder: Path, agent_ports: list[int], stack: contextlib.ExitStack, meter: CpuMeter
) -> list[int]:
    """A throwaway sshd on 127.0.0.1 and one `ssh -N` session with an `-R` forward for each of
    `agent_ports`; the forwarded ports on 127.0.0.1, in the same order."""
    folder.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True
        )
    (folder / "authorized_keys").write_bytes((folder / "user_key.pub").read_bytes())
    sshd_port, forwarded = free_port(), [free_port() for _ in agent_ports]
    (folder / "sshd_config").write_text(
        f"Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowTcpForwarding yes\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    sshd_log = folder / "sshd.log"
    sshd_path = sshd_binary() or "sshd"
    sshd = start([sshd_path, "-D", "-e", "-f", str(folder / "sshd_config")], sshd_log, stack)
    wait_until(lambda: listening(sshd_port), "sshd", sshd, sshd_log)
    meter.watch("sshd", sshd.pid, children=True)
    ssh_log = folder / "ssh.log"
    forwards = [
        arg for outer, inner in zip(forwarded, agent_ports, strict=True)
        for arg in ("-R", f"{outer}:127.0.0.1:{inner}")
    ]  # fmt: skip
    ssh = start(
        ["ssh", "-N", "-F", "/dev/null", *forwards,
         "-p", str(sshd_port), "-i", str(folder / "user_key"),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
         f"{getpass.getuser()}@127.0.0.1"],
        ssh_log, stack,
    )  # fmt: skip
    wait_until(lambda: all(map(listening, forwarded)), "ssh -R", ssh, ssh_log)
    meter.watch("ssh", ssh.pid)
    return forwarded


# --- the load --------------------------------------------------------------------------------


class CpuMeter:
    """CPU time of the processes on the paths, from /proc (sshd forks a child per session),
    and of everything else on the machine ("others": other work that competes for the cores)."""

    def __init__(self) -> None:
        self.roots: dict[str, tuple[int, bool]] = {"bench": (os.getpid(), False)}
        self.tick = os.sysconf("SC_CLK_TCK")

    def watch(self, name: str, pid: int, children: bool = False) -> None:
        self.roots[name] = (pid, children)

    def read(self) -> dict[str, float]:
        """CPU seconds so far, by name (a process and, where asked, its descendants)."""
        stats: dict[int, tuple[int, int]] = {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        used = {}
        for name, (pid, children) in self.roots.items():
            tree, ticks = [pid], 0
            while tree:
                current = tree.pop()
                ticks += stats.get(current, (0, 0))[1]
                if children:
                    tree += [child for child, (parent, _) in stats.items() if parent == current]
            used[name] = ticks / self.tick
        user, nice, system, _idle, _wait, irq, softirq, steal = (
            int(n) for n in Path("/proc/stat").read_text().split()[1:9]
        )
        busy = (user + nice + system + irq + softirq + steal) / self.tick
        used["others"] = busy - sum(used.values())
        return used

    async def timed(self, into: Cpu, work: Coroutine[Any, Any, T]) -> T:
        """Await `work`, adding the CPU each process used meanwhile to `into`."""
        before, started = self.read(), time.perf_counter()
        result = await work
        elapsed, after = time.perf_counter() - started, self.read()
        into.elapsed += elapsed
        for name, seconds in after.items():
            into.seconds[name] = into.seconds.get(name, 0.0) + seconds - before.get(name, 0.0)
        return result


@dataclass
class Cpu:
    seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    def __str__(self) -> str:
        shares = {name: used / self.elapsed for name, used in self.seconds.items()}
        return ", ".join(f"{name} {share:.2f}" for name, share in shares.items() if share >= 0.01)

    def per_request(self, rate: float) -> str:
        """Milliseconds of CPU each process spent per request, at `rate` requests/s."""
        shares = {name: used / self.elapsed for name, used in self.seconds.items()}
        return ", ".join(
            f"{name} {share / rate * 1000:.2f} ms"
            for name, share in shares.items()
            if share >= 0.01 and name != "others" and rate
        )


@dataclass
class Small:
    seconds: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0


@dataclass
class PathResult:
    name: str
    base: str
    tls: ssl.SSLContext | None
    loaded: Small = field(default_factory=Small)
    paced: Small = field(default_factory=Small)
    single: Small = field(default_factory=Small)
    bulk: float = 0.0
    """MB/s (10^6 B), the best of the rounds."""
    loaded_cpu: Cpu = field(default_factory=Cpu)
    bulk_cpu: Cpu = field(default_factory=Cpu)


def session(tls: ssl.SSLContext | None, limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, ssl=tls if tls is not None else True)
    return aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {TOKEN}"})


async def small_gets(
    path: PathResult, into: Small, rows: int, seconds: float, c: int, *, rate: float | None = None
) -> None:
    """`c` callers sending GET /v1/t/{random key}, after a short warm-up: back to back, or with
    `rate`, each when it falls due on a fixed schedule of `rate` requests/s. A request that
    falls due while all `c` are busy is timed from when it was due, so waiting for a free
    caller counts as latency; one sent on time is timed from when it was sent."""

    async def caller(
        number: int, until: float, due: Callable[[], float] | None, record: bool
    ) -> None:
        draw = random.Random(number).randint  # noqa: S311 - picks keys, not secrets
        while True:
            late = due() if due else None
            if late is not None and late > time.perf_counter():
                await asyncio.sleep(late - time.perf_counter())
                late = None  # on time
            if (sent := time.perf_counter()) >= until:
                return
            try:
                async with client.get(f"{path.base}/v1/t/{draw(1, rows)}") as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
                await asyncio.sleep(0.01)
            if not record:
                continue
            if ok:
                into.latencies.append(time.perf_counter() - (sent if late is None else late))
            else:
                into.errors += 1

    async with session(path.tls, c) as client:
        warm = time.perf_counter() + WARM_UP
        await asyncio.gather(*(caller(n, warm, None, False) for n in range(c)))
        started = time.perf_counter()
        slots = itertools.count()
        schedule = (lambda: started + next(slots) / rate) if rate else None
        until = started + seconds
        await asyncio.gather(*(caller(n, until, schedule, True) for n in range(c)))
        into.seconds += time.perf_counter() - started


async def bulk_once(path: PathResult, rows: int) -> None:
    """The whole table as NDJSON, read as it streams; keeps the best MB/s."""
    async with session(path.tls, 1) as client:
        size = lines = 0
        started = time.perf_counter()
        headers = {"Accept": "application/x-ndjson"}
        async with client.get(f"{path.base}/v1/t", headers=headers) as response:
            assert response.status == 200, response.status
            async for chunk in response.content.iter_chunked(1 << 18):
                size += len(chunk)
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
    assert lines == rows, (lines, rows)
    path.bulk = max(path.bulk, size / elapsed / 1e6)


async def measure(paths: list[PathResult], args: Any, meter: CpuMeter) -> float:
    """The paths take turns, round after round, so a change in the machine's load hits all.
    Returns the fixed rate of the paced runs: a share of the slowest path's saturated rate."""
    share = args.seconds / args.rounds
    for number in range(1, args.rounds + 1):
        print(f"round {number}/{args.rounds}: small GETs at c={args.concurrency} ...", flush=True)
        for path in paths:
            work = small_gets(path, path.loaded, args.rows, share, args.concurrency)
            await meter.timed(path.loaded_cpu, work)
    rate: float = args.paced * min(path.loaded.rate for path in paths)
    print(f"small GETs at {rate:,.0f} req/s (c<={args.concurrency}), ...", flush=True)
    for path in paths:
        await small_gets(
            path, path.paced, args.rows, args.single_seconds, args.concurrency, rate=rate
        )
    print(f"small GETs at c=1, {args.single_seconds:g} s per path ...", flush=True)
    for path in paths:
        await small_gets(path, path.single, args.rows, args.single_seconds, 1)
    print(f"bulk NDJSON, best of {args.rounds} per path ...", flush=True)
    for _ in range(args.rounds):
        for path in paths:
            await meter.timed(path.bulk_cpu, bulk_once(path, args.rows))
    for path in paths:
        errors = path.loaded.errors + path.paced.errors + path.single.errors
        print(
            f"  {path.name:7} c={args.concurrency}: {path.loaded.rate:6,.0f} req/s, "
            f"p50 {path.loaded.percentile(0.5):6.2f} ms, p99 {path.loaded.percentile(0.99):6.2f}"
            f" ms, errors {errors}\n"
            f"          CPU at c={args.concurrency} (1.00 = one core): {path.loaded_cpu}\n"
            f"          CPU per request: {path.loaded_cpu.per_request(path.loaded.rate)}\n"
            f"          CPU during bulk: {path.bulk_cpu}"
        )
    return rate


# --- the report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def p50(small: Small) -> float:
    return small.percentile(0.5)


def p99(small: Small) -> float:
    return small.percentile(0.99)


def compare(
    paths: list[PathResult], label: str, figure: Callable[[PathResult], float], unit: str
) -> None:
    """One line: `figure` for each path, and what each adds to the direct path's."""
    direct, others = paths[0], paths[1:]
    values = ", ".join(f"{p.name} {figure(p):,.2f}" for p in paths)
    deltas = ", ".join(f"{p.name} {figure(p) - figure(direct):+.2f}" for p in others)
    print(f"  {label}: {values} {unit}; added: {deltas} {unit}")


def report(paths: list[PathResult], args: Any, rate: float) -> None:
    direct, relay, ssh = paths[0], paths[1], paths[2:]
    c = args.concurrency
    small_ratio = relay.loaded.rate / direct.loaded.rate
    bulk_ratio = relay.bulk / direct.bulk
    print(f"\n== {args.rows:,} rows; {args.seconds:g} s per path at c={c} ==")
    rates = ", ".join(f"{p.name} {p.loaded.rate:,.0f}" for p in paths)
    print(f"small GET, c={c} back to back: {rates} req/s (relay/direct {small_ratio:.2f})")
    compare(paths, "p50", lambda p: p50(p.loaded), "ms")
    compare(paths, "p99", lambda p: p99(p.loaded), "ms")
    print(f"small GET, c<={c} at a fixed {rate:,.0f} req/s (below every path's capacity):")
    compare(paths, "p50", lambda p: p50(p.paced), "ms")
    compare(paths, "p99", lambda p: p99(p.paced), "ms")
    print("small GET, c=1:")
    compare(paths, "p50", lambda p: p50(p.single), "ms")
    bulks = ", ".join(f"{p.name} {p.bulk:.1f}" for p in paths)
    print(f"bulk NDJSON: {bulks} MB/s (relay/direct {bulk_ratio:.2f})")
    print("targets (from the issue):")
    print(f"  small relay/direct >= 0.70: {small_ratio:.2f}  {verdict(small_ratio >= 0.7)}")
    print(f"  bulk  relay/direct >= 0.80: {bulk_ratio:.2f}  {verdict(bulk_ratio >= 0.8)}")
    for which, label in (
        ("paced", f"c<={c} at {rate:,.0f} req/s"),
        ("single", "c=1"),
        ("loaded", f"c={c} back to back (the rate gap, as queueing)"),
    ):
        extra = p50(getattr(relay, which)) - p50(getattr(direct, which))
        print(f"  p50 added <= 1 ms, {label}: {extra:+.2f} ms  {verdict(extra <= 1.0)}")
    if not ssh:
        print("  relay at least par with ssh -R: not measured (ssh -R skipped)")
    for other in ssh:
        small_vs, bulk_vs = relay.loaded.rate / other.loaded.rate, relay.bulk / other.bulk
        print(f"  small relay/{other.name} >= 1.0: {small_vs:.2f}  {verdict(small_vs >= 1.0)}")
        print(f"  bulk  relay/{other.name} >= 1.0: {bulk_vs:.2f}  {verdict(bulk_vs >= 1.0)}")
    busy = max(p.loaded_cpu.seconds.get("others", 0) / p.loaded_cpu.elapsed for p in paths)
    if busy > 0.15:
        print(f"note: other work on this machine used up to {busy:.2f} cores meanwhile")


def figures(paths: list[PathResult], rate: float, skip: str | None) -> dict[str, Any]:
    """What `--json` writes: the figures of each path, by name."""

    def cpu_ms(cpu: Cpu, requests_per_s: float) -> dict[str, float]:
        if not cpu.elapsed or not requests_per_s:
            return {}
        return {
            name: used / cpu.elapsed / requests_per_s * 1000
            for name, used in cpu.seconds.items()
            if name != "others"
        }

    return {
        "paced_rate": rate,
        "ssh_skipped": skip,
        "paths": {
            p.name: {
                "rate": p.loaded.rate,
                "p50_loaded_ms": p50(p.loaded), "p99_loaded_ms": p99(p.loaded),
                "p50_paced_ms": p50(p.paced), "p99_paced_ms": p99(p.paced),
                "p50_single_ms": p50(p.single), "bulk_mb_s": p.bulk,
                "errors": p.loaded.errors + p.paced.errors + p.single.errors,
                "cpu_ms_per_request": cpu_ms(p.loaded_cpu, p.loaded.rate),
            }
            for p in paths
        },
    }  # fmt: skip


# --- the run ---------------------------------------------------------------------------------


def start_relay_and_agent(
    folder: Path, pki: Pki, rows: int, stack: contextlib.ExitStack, meter: CpuMeter
) -> tuple[int, int]:
    """The relay, then the agent with its tunnel; (agent port, relay caller port) once up."""
    agents_port, callers_port, admin_port, agent_port = (free_port() for _ in range(4))
    relay_config(
        pki, TOKEN, agents_port=agents_port, listen=f"127.0.0.1:{callers_port}",
        admin=f"127.0.0.1:{admin_port}", request_timeout="60s", heartbeat="5s",
        dead_after="15s",
    )  # fmt: skip
    relay_log = folder / "relay.log"
    relay = start(relay_command(pki.folder / "relay.yaml"), relay_log, stack)
    wait_until(lambda: listening(callers_port), "relay", relay, relay_log)
    meter.watch("relay", relay.pid)
    cert, key = pki.agent("agent", AGENT_ID, "plants")
    tunnel = tunnel_section(pki, agents_port, cert, key, heartbeat="5s", dead_after="15s")
    config = write_agent_config(folder, rows, f"127.0.0.1:{agent_port}", tunnel, "agent")
    agent = start_agent(config, agent_port, stack, meter)
    wait_until(lambda: tunnels_up(admin_port), "tunnel", agent.process, folder / "agent.log")
    return agent_port, callers_port


def start_https_agent(
    folder: Path, pki: Pki, rows: int, stack: contextlib.ExitStack, meter: CpuMeter
) -> int:
    """A second agent on the same table that serves HTTPS and has no tunnel: what `ssh -R`
    must carry to give a cloud caller TLS, as the relay does. Its port, once up."""
    port = free_port()
    tls = {"cert": str(pki.folder / "relay.pem"), "key": str(pki.folder / "relay.key")}
    listen = {"address": f"127.0.0.1:{port}", "tls": tls}  # a certificate for 127.0.0.1
    start_agent(write_agent_config(folder, rows, listen, None, "agent-https"), port, stack, meter)
    return port


def start_agent(
    config: Path, port: int, stack: contextlib.ExitStack, meter: CpuMeter
) -> AgentProcess:
    """An agent process named after its config file, its log beside it."""
    name = config.stem
    agent = AgentProcess(config, port)
    stack.callback(agent.stop)
    meter.watch(name, agent.process.pid)
    drain(agent.process.stderr, config.parent / f"{name}.log")
    return agent


def run(folder: Path, args: Any) -> None:
    skip = "--no-ssh" if args.no_ssh else ensure_openssh()
    print(f"building {args.rows:,} rows and a PKI in {folder} ...", flush=True)
    make_db(folder / "t.db", args.rows)
    (folder / "pki").mkdir()
    pki = make_pki(folder / "pki")
    meter = CpuMeter()
    with contextlib.ExitStack() as stack:
        agent_port, callers_port = start_relay_and_agent(folder, pki, args.rows, stack, meter)
        paths = [
            PathResult("direct", f"http://127.0.0.1:{agent_port}", None),
            PathResult(
                "relay",
                f"https://127.0.0.1:{callers_port}/agents/{AGENT_ID}",
                pki.caller_context(),
            ),
        ]
        if skip is None:
            try:
                https_port = start_https_agent(folder, pki, args.rows, stack, meter)
                ports = [agent_port, https_port]
                plain, tls = start_ssh_forward(folder / "ssh", ports, stack, meter)
                paths.append(PathResult("ssh -R", f"http://127.0.0.1:{plain}", None))
                paths.append(
                    PathResult("ssh+TLS", f"https://127.0.0.1:{tls}", pki.caller_context())
                )
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                skip = f"ssh -R could not be set up: {exc}"
                del paths[2:]
        if skip:
            print(f"skipping the ssh -R comparison: {skip}", flush=True)
        try:
            rate = asyncio.run(measure(paths, args, meter))
        except aiohttp.ClientError as exc:
            logs = "\n".join(f"--- {n}\n{tail(folder / n)}" for n in ("agent.log", "relay.log"))
            raise SystemExit(f"a request failed ({exc}); the logs end:\n{logs}") from None
    report(paths, args, rate)
    if args.json:
        Path(args.json).write_text(orjson.dumps(figures(paths, rate, skip)).decode())


def parse() -> Any:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per path, at concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="turns the paths take")
    parser.add_argument("--single-seconds", type=float, default=3.0, help="per path, at c=1")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--paced", type=float, default=0.5, help="fixed rate, as a share of the slowest path's"
    )
    parser.add_argument("--no-ssh", action="store_true", help="skip the ssh -R comparison")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    return parser.parse_args()


def main() -> int:
    args = parse()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tunnel-") as folder:
            run(Path(folder), args)
    except KeyboardInterrupt:
        print("\ninterrupted; every process this run started has been stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
