# Starts the contenders as processes through `Procs`: the framework ceiling (a minimal aiohttp
# handler), Bridgehead agents (`bridgehead run`), Datasette and sandman2, each on a free port
# of 127.0.0.1, and waits until each answers.
from __future__ import annotations

import hashlib
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from procs import Procs, accepts, free_port

TOKEN = "bench-token-0123456789"  # noqa: S105 - a throwaway API key for 127.0.0.1
CEILING = """
import sys
from aiohttp import web
BODY = b'{"id": 1, "name": "name 1", "email": "c1@example.com", "balance": "0.01"}'
async def handle(request):
    return web.Response(body=BODY, content_type="application/json")
loop = None
if sys.argv[2] == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
app = web.Application()
app.router.add_get("/v1/customers/{id}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""


def agent_loop() -> str:
    """The event loop `bridgehead run` picks here: its own `loop_name()` where this build
    has one (uvloop where installed, unless BRIDGEHEAD_LOOP=asyncio), else stdlib asyncio."""
    try:
        from bridgehead.common.loops import loop_name  # noqa: PLC0415 - newer builds only
    except ImportError:
        return "asyncio"
    return loop_name()


def ceiling(procs: Procs, loop: str) -> str:
    """The minimal aiohttp handler on `loop` (asyncio or uvloop); its base URL."""
    port = free_port()
    name = f"ceiling-{loop}"
    process = procs.start(name, [sys.executable, "-c", CEILING, str(port), loop])
    procs.wait_ready(process, lambda: accepts(port), name)
    return f"http://127.0.0.1:{port}"


def agent_config(
    folder: Path,
    name: str,
    source: dict[str, Any],
    resources: dict[str, Any],
    scopes: list[str],
    *,
    admin: str | None = None,
) -> tuple[Path, int]:
    """An agent config file with rate limits out of the way; (its path, its port)."""
    port = free_port()
    config = {
        "sources": {"db": source},
        "resources": resources,
        "auth": {
            "api_keys": [
                {
                    "name": "bench",
                    "scopes": scopes,
                    "key_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                }
            ]
        },
        "listen": f"127.0.0.1:{port}",
        "admin": admin,
        "state_dir": str(folder / f"{name}-state"),
        "limits": {"requests_per_second": 1e9, "burst": 10**9, "failed_auth_burst": 10**9},
        "idempotency": {"max_keys_per_principal": 10**8},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, port


def agent_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "bridgehead.agent.cli", "run", "-c", str(config)]


def agent(procs: Procs, config: Path, port: int) -> tuple[Any, str]:
    """`bridgehead run -c CONFIG` once it listens; (the process, its base URL)."""
    process = procs.start(config.stem, agent_argv(config))
    procs.wait_ready(process, lambda: accepts(port), config.stem)
    return process, f"http://127.0.0.1:{port}"


def sqlite_agent(procs: Procs, folder: Path, db: Path) -> tuple[Any, str]:
    resources = {"customers": {"source": "db", "table": "customers", "key": ["id"]}}
    config, port = agent_config(
        folder, "agent-sqlite", {"sqlite": str(db)}, resources, ["customers:read"]
    )
    return agent(procs, config, port)


def pg_agent(procs: Procs, folder: Path, connection_string: str, rows: int) -> tuple[Any, str]:
    resources = {
        "customers": {"source": "db", "table": "customers", "key": ["id"]},
        "w": {"source": "db", "table": "w", "key": ["id"], "operations": ["read", "insert"]},
        "big": {"source": "db", "table": "big", "key": ["id"], "max_rows": rows},
    }
    source = {"odbc": connection_string, "pool_size": 16}
    scopes = ["customers:read", "w:read", "w:write", "big:read"]
    config, port = agent_config(folder, "agent-pg", source, resources, scopes)
    return agent(procs, config, port)


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1
        return bool(response.status == 200)


def datasette(procs: Procs, peer: Path, db: Path) -> str:
    """Datasette serving the SQLite file; the base URL of its JSON row endpoint."""
    port = free_port()
    argv = [str(peer / "bin/datasette"), "serve", str(db), "--host", "127.0.0.1", "-p", str(port)]
    process = procs.start("datasette", argv)
    base = f"http://127.0.0.1:{port}/{db.stem}/customers"
    procs.wait_ready(process, lambda: answers(f"{base}/1.json"), "datasette")
    return base


def sandman2(procs: Procs, peer: Path, host_port: int, user: str, password: str) -> str:
    """sandman2 on the PostgreSQL database `bench`; the base URL of its customers resource."""
    port = free_port()
    uri = f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{host_port}/bench"
    process = procs.start("sandman2", [str(peer / "bin/sandman2ctl"), "-l", "-p", str(port), uri])
    base = f"http://127.0.0.1:{port}/customers"
    procs.wait_ready(process, lambda: answers(f"{base}/1"), "sandman2")
    time.sleep(0.2)
    return base
