"""Benchmark: what the tunnel costs. The agent reached directly, through the relay, and through
`ssh -R`, all in one run on this machine.

It builds a SQLite table `t` (100,000 rows x 6 columns) and a throwaway PKI in a temp folder,
then starts the relay and the agent as two separate processes. The agent has a `tunnel:`
section with 2 connections to the relay. The load generator (aiohttp, one TCPConnector)
runs in this process. It measures:

- small `GET /v1/t/{key}` at concurrency 64 for a fixed time: requests/s and p50/p99 latency;
- the same GET one at a time (concurrency 1): latency without queueing, to set against the
  "p50 added <= 1 ms" target;
- a bulk NDJSON export of the whole table (`Accept: application/x-ndjson`): MB/s, the best
  of the rounds.

Each is measured (a) direct to the agent's local listener, (b) through the relay
(`https://127.0.0.1:PORT/agents/plant-7/v1/...`, trusting the bench CA), and (c) through an
`ssh -R` port forward over a throwaway sshd on 127.0.0.1, which is the classic alternative.
If OpenSSH is missing it is installed with apt-get; if that fails, part (c) is skipped. The
run prints the ratios relay/direct and relay/ssh next to the targets. The paths take turns
(3 rounds by default), so a change in the machine's load falls on all of them. All traffic
stays on 127.0.0.1. Run from the repository root:

    .venv/bin/python bench/tunnel.py [--rows 100000] [--seconds 10] [--concurrency 64] [--no-ssh]

The load generator, relay, agent, sshd and ssh all share the machine's cores, so each path's
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
from relay.app import Relay
from relay.config import load_relay_config

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


def write_agent_config(folder: Path, rows: int, port: int, tunnel: dict[str, Any]) -> Path:
    config = {
        "sources": {"db": {"sqlite": str(folder / "t.db")}},
        "resources": {"t": {"source": "db", "table": "t", "key": ["id"], "max_rows": rows}},
        "auth": {
            "api_keys": [
                {"name": "bench", "key_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                 "scopes": ["t:read"]}
            ]
        },
        "listen": f"127.0.0.1:{port}",
        "admin": None,
        "state_dir": str(folder / "agent-state"),
        "limits": {"requests_per_second": 1e9, "burst": 10**9},  # measure the path, not the limiter
        "tunnel": tunnel,
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def relay_command(config: Path) -> list[str]:
    """`bridgehead-relay run -c` if this build has it, else a few lines around `Relay`."""
    probe = subprocess.run(
        [sys.executable, "-m", "relay.cli", "run", "--help"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "relay.cli", "run", "-c", str(config)]
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
    folder: Path, agent_port: int, stack: contextlib.ExitStack, meter: CpuMeter
) -> int:
    """A throwaway sshd on 127.0.0.1 and `ssh -N -R`; the forwarded port on 127.0.0.1."""
    folder.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True
        )
    (folder / "authorized_keys").write_bytes((folder / "user_key.pub").read_bytes())
    sshd_port, forwarded = free_port(), free_port()
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
    ssh = start(
        ["ssh", "-N", "-F", "/dev/null", "-R", f"{forwarded}:127.0.0.1:{agent_port}",
         "-p", str(sshd_port), "-i", str(folder / "user_key"),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
         f"{getpass.getuser()}@127.0.0.1"],
        ssh_log, stack,
    )  # fmt: skip
    wait_until(lambda: listening(forwarded), "ssh -R", ssh, ssh_log)
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
    single: Small = field(default_factory=Small)
    bulk: float = 0.0
    """MB/s (10^6 B), the best of the rounds."""
    loaded_cpu: Cpu = field(default_factory=Cpu)
    bulk_cpu: Cpu = field(default_factory=Cpu)


def session(tls: ssl.SSLContext | None, limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, ssl=tls if tls is not None else True)
    return aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {TOKEN}"})


async def small_gets(path: PathResult, into: Small, rows: int, seconds: float, c: int) -> None:
    """`c` callers each sending GET /v1/t/{random key} back to back, after a short warm-up."""

    async def caller(number: int, until: float, record: bool) -> None:
        draw = random.Random(number).randint  # noqa: S311 - picks keys, not secrets
        while (sent := time.perf_counter()) < until:
            try:
                async with client.get(f"{path.base}/v1/t/{draw(1, rows)}") as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
                await asyncio.sleep(0.01)
            if record and ok:
                into.latencies.append(time.perf_counter() - sent)
            elif record:
                into.errors += 1

    async with session(path.tls, c) as client:
        warm = time.perf_counter() + WARM_UP
        await asyncio.gather(*(caller(n, warm, False) for n in range(c)))
        started = time.perf_counter()
        await asyncio.gather(*(caller(n, started + seconds, True) for n in range(c)))
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


async def measure(paths: list[PathResult], args: Any, meter: CpuMeter) -> None:
    """The paths take turns, round after round, so a change in the machine's load hits all."""
    share = args.seconds / args.rounds
    for number in range(1, args.rounds + 1):
        print(f"round {number}/{args.rounds}: small GETs at c={args.concurrency} ...", flush=True)
        for path in paths:
            work = small_gets(path, path.loaded, args.rows, share, args.concurrency)
            await meter.timed(path.loaded_cpu, work)
    print(f"small GETs at c=1, {args.single_seconds:g} s per path ...", flush=True)
    for path in paths:
        await small_gets(path, path.single, args.rows, args.single_seconds, 1)
    print(f"bulk NDJSON, best of {args.rounds} per path ...", flush=True)
    for _ in range(args.rounds):
        for path in paths:
            await meter.timed(path.bulk_cpu, bulk_once(path, args.rows))
    for path in paths:
        print(
            f"  {path.name:7} c={args.concurrency}: {path.loaded.rate:6,.0f} req/s, "
            f"p50 {path.loaded.percentile(0.5):6.2f} ms, p99 {path.loaded.percentile(0.99):6.2f}"
            f" ms, errors {path.loaded.errors + path.single.errors}\n"
            f"          CPU at c={args.concurrency} (1.00 = one core): {path.loaded_cpu}\n"
            f"          CPU per request: {path.loaded_cpu.per_request(path.loaded.rate)}\n"
            f"          CPU during bulk: {path.bulk_cpu}"
        )


# --- the report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def added(path: PathResult, direct: PathResult, p: float, which: str = "loaded") -> float:
    """Milliseconds `path` adds to the direct path's latency at percentile `p`."""
    mine, base = getattr(path, which), getattr(direct, which)
    return float(mine.percentile(p) - base.percentile(p))


def report(paths: list[PathResult], args: Any) -> None:
    direct, relay = paths[0], paths[1]
    ssh = paths[2] if len(paths) > 2 else None
    small_ratio = relay.loaded.rate / direct.loaded.rate
    bulk_ratio = relay.bulk / direct.bulk
    print(f"\n== {args.rows:,} rows; {args.seconds:g} s per path at c={args.concurrency} ==")
    ssh_rate = f", ssh -R {ssh.loaded.rate:,.0f} req/s" if ssh else ""
    print(
        f"small GET c={args.concurrency}: direct {direct.loaded.rate:,.0f} req/s, relay "
        f"{relay.loaded.rate:,.0f} req/s (ratio {small_ratio:.2f}){ssh_rate}"
    )
    for p, label in ((0.5, "p50"), (0.99, "p99")):
        line = (
            f"  {label}: direct {direct.loaded.percentile(p):.2f} ms, relay "
            f"{relay.loaded.percentile(p):.2f} ms; added: relay {added(relay, direct, p):+.2f} ms"
        )
        print(line + (f", ssh -R {added(ssh, direct, p):+.2f} ms" if ssh else ""))
    line = (
        f"small GET c=1: p50 direct {direct.single.percentile(0.5):.2f} ms, relay "
        f"{relay.single.percentile(0.5):.2f} ms; added: relay "
        f"{added(relay, direct, 0.5, 'single'):+.2f} ms"
    )
    print(line + (f", ssh -R {added(ssh, direct, 0.5, 'single'):+.2f} ms" if ssh else ""))
    ssh_bulk = f", ssh -R {ssh.bulk:.1f} MB/s" if ssh else ""
    print(
        f"bulk NDJSON: direct {direct.bulk:.1f} MB/s, relay {relay.bulk:.1f} MB/s "
        f"(ratio {bulk_ratio:.2f}){ssh_bulk}"
    )
    print("targets (from the issue):")
    print(f"  small relay/direct >= 0.70: {small_ratio:.2f}  {verdict(small_ratio >= 0.7)}")
    print(f"  bulk  relay/direct >= 0.80: {bulk_ratio:.2f}  {verdict(bulk_ratio >= 0.8)}")
    for which, label in (("loaded", f"c={args.concurrency}"), ("single", "c=1")):
        extra = added(relay, direct, 0.5, which)
        print(f"  p50 added <= 1 ms at {label}: {extra:+.2f} ms  {verdict(extra <= 1.0)}")
    if ssh is None:
        print("  relay at least par with ssh -R: not measured (ssh -R skipped)")
    else:
        small_vs, bulk_vs = relay.loaded.rate / ssh.loaded.rate, relay.bulk / ssh.bulk
        print(f"  small relay/ssh -R >= 1.0: {small_vs:.2f}  {verdict(small_vs >= 1.0)}")
        print(f"  bulk  relay/ssh -R >= 1.0: {bulk_vs:.2f}  {verdict(bulk_vs >= 1.0)}")
    busy = max(p.loaded_cpu.seconds.get("others", 0) / p.loaded_cpu.elapsed for p in paths)
    if busy > 0.15:
        print(f"note: other work on this machine used up to {busy:.2f} cores meanwhile")


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
    agent = AgentProcess(write_agent_config(folder, rows, agent_port, tunnel), agent_port)
    stack.callback(agent.stop)
    meter.watch("agent", agent.process.pid)
    drain(agent.process.stderr, folder / "agent.log")
    wait_until(lambda: tunnels_up(admin_port), "tunnel", agent.process, folder / "agent.log")
    return agent_port, callers_port


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
                forwarded = start_ssh_forward(folder / "ssh", agent_port, stack, meter)
                paths.append(PathResult("ssh -R", f"http://127.0.0.1:{forwarded}", None))
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                skip = f"ssh -R could not be set up: {exc}"
        if skip:
            print(f"skipping the ssh -R comparison: {skip}", flush=True)
        try:
            asyncio.run(measure(paths, args, meter))
        except aiohttp.ClientError as exc:
            logs = "\n".join(f"--- {n}\n{tail(folder / n)}" for n in ("agent.log", "relay.log"))
            raise SystemExit(f"a request failed ({exc}); the logs end:\n{logs}") from None
    report(paths, args)


def parse() -> Any:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per path, at concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="turns the paths take")
    parser.add_argument("--single-seconds", type=float, default=3.0, help="per path, at c=1")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-ssh", action="store_true", help="skip the ssh -R comparison")
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
