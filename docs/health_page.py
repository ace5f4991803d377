"""Writes docs/health-page.png, the README's picture of the admin health page, from a real
running demo: starts `bridgehead demo` in a temporary folder (agent, relay, tunnel), sends
it a few reads (found and not found) so the request table and its sparklines have figures,
waits for the tunnel, then photographs the page in headless Chromium (tests/browser.py).
Run from the repository root after `.ci/setup --test`:

    .venv/bin/python docs/health_page.py [--out docs/health-page.png] [--width 1280]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import chromium_paths, headless_chromium  # noqa: E402 - the tests' own helper

READS = ["/v1/customers?limit=3", "/v1/orders?limit=5", "/v1/customers/1", "/v1/customers/999999"]


def start_demo(folder: Path) -> tuple[subprocess.Popen[str], list[str]]:
    command = [sys.executable, "-m", "bridgehead.agent.cli", "demo", "--dir", str(folder),
               "--port", "0", "--relay-port", "0"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (line := process.stdout.readline()):
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return process, lines
    process.kill()
    raise SystemExit("the demo did not start:\n" + "\n".join(lines))


def field(lines: list[str], name: str) -> str:
    found = next(line.split()[1] for line in lines if line.strip().startswith(f"{name}:"))
    return re.sub(r"/v1/.*$", "", found)


def get(url: str, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "health-page.png")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    paths = chromium_paths()
    if paths is None:
        raise SystemExit("install chromium and chromium-driver first (.ci/setup --test)")
    with tempfile.TemporaryDirectory() as folder:
        process, lines = start_demo(Path(folder) / "demo")
        try:
            admin, api = field(lines, "admin"), field(lines, "API")
            key = (Path(folder) / "demo" / "api-key.txt").read_text().strip()
            deadline = time.monotonic() + 30
            while get(admin + "readyz") != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            for round_ in range(12):
                for path in READS[: 2 + round_ % 3]:
                    get(api + path, key)
            with headless_chromium(paths, width=args.width, height=900) as page:
                page.open(admin)
                page.wait_text("#tunnel-summary", "2 of 2 connections up", 20)
                page.wait_text("#state", "OK", 20)
                page.screenshot(args.out)
                errors = page.console_errors()
        finally:
            process.terminate()
            process.communicate(timeout=20)
    if errors:
        raise SystemExit(f"the page logged console errors: {errors}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
