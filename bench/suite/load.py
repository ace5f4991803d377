# Load from `wrk -t2 -c16`: a Lua script per target (a random key per request, or a fresh
# Idempotency-Key per write) whose `done` hook prints one machine-readable line, parsed here.
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = """
local counter = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  math.randomseed(os.time() * 7919 + (tid or 0))
end
local headers = HEADERS
request = function()
  counter = counter + 1
  local h = {}
  for k, v in pairs(headers) do h[k] = v end
  if UNIQUE ~= "" then h[UNIQUE] = PREFIX .. "-" .. tid .. "-" .. counter end
  local path = PATH_HEAD
  if KEYS > 0 then path = path .. math.random(1, KEYS) .. PATH_TAIL end
  return wrk.format(METHOD, path, h, BODY)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non2xx": %d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class Target:
    """What wrk sends: METHOD head+random(1..keys)+tail (head alone if keys is 0) to base (an
    origin: wrk takes only the host and port from it), with headers and a body."""

    base: str
    head: str
    tail: str = ""
    keys: int = 0
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    unique_header: str = ""  # a header given a fresh value per request (Idempotency-Key)
    prefix: str = "k"


def lua_string(text: str | None) -> str:
    return "nil" if text is None else json.dumps(text)  # JSON strings are valid Lua strings


def script(target: Target, folder: Path) -> Path:
    headers = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in target.headers)
    values = {
        "HEADERS": "{" + headers + "}",
        "UNIQUE": lua_string(target.unique_header),
        "PREFIX": lua_string(target.prefix),
        "PATH_HEAD": lua_string(target.head),
        "PATH_TAIL": lua_string(target.tail),
        "KEYS": str(target.keys),
        "METHOD": lua_string(target.method),
        "BODY": lua_string(target.body),
    }
    text = "".join(f"local {name} = {value}\n" for name, value in values.items()) + LUA
    path = folder / f"wrk-{abs(hash(text))}.lua"
    path.write_text(text)
    return path


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


def run(target: Target, folder: Path, seconds: float, connections: int = 16) -> Result:
    """wrk -t2 -cN for `seconds` against `target`; requests/s and latency."""
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    argv += ["-s", str(script(target, folder)), target.base]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")
    figures = json.loads(line.removeprefix("BENCHJSON "))
    ok = figures["requests"] - figures["non2xx"]
    return Result(
        rate=ok / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=figures["errors"] + figures["non2xx"],
    )


def command(connections: int = 16) -> str:
    """The wrk command line, for the report."""
    return f"wrk -t2 -c{connections} -d<seconds>s --timeout 10s -s <script.lua> <url>"
