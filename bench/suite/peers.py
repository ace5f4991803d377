# Installs what the suite compares against, idempotently: each peer from PyPI in its own
# virtual environment under bench/.peers/ (a stamp file records the pinned requirements it was
# made with), `wrk` from Debian. A peer that cannot be installed is a reason string, and the
# comparisons that need it print "skipped: REASON".
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PEERS = Path(__file__).resolve().parent.parent / ".peers"

# sandman2 1.2.3 (its last release, 2019) pins Flask-SQLAlchemy 2.4.0 and SQLAlchemy 1.3.3,
# which need Flask < 2.1 (`_app_ctx_stack.__ident_func__`), hence Werkzeug 2.0, Jinja2 3.0
# (Flask-Admin 1.5 imports `contextfunction`) and itsdangerous 2.0.
REQUIREMENTS = {
    "datasette": ["datasette==0.65.5"],
    "sandman2": [
        "sandman2==1.2.3",
        "Flask==2.0.3",
        "Werkzeug==2.0.3",
        "Flask-Admin==1.5.8",
        "WTForms==3.0.1",
        "Jinja2==3.0.3",
        "itsdangerous==2.0.1",
        "MarkupSafe==2.1.5",
        "psycopg2-binary==2.9.13",
    ],
    "chart": ["matplotlib"],
}
PROBES = {
    "datasette": ["bin/datasette", "--version"],
    "sandman2": ["bin/sandman2ctl", "--help"],
    "chart": ["bin/python", "-c", "import matplotlib"],
}


def venv(name: str) -> Path | str:
    """The folder of peer `name`'s environment, made if missing; or why it cannot be."""
    folder, wanted = PEERS / name, "\n".join(REQUIREMENTS[name])
    stamp = folder / "bench-requirements.txt"
    if not (stamp.exists() and stamp.read_text() == wanted):
        print(f"installing {name} into {folder} ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(folder)], check=False)
        if made.returncode != 0:
            return f"python -m venv {folder} failed"
        pip = [str(folder / "bin/pip"), "install", "-q", *REQUIREMENTS[name]]
        done = subprocess.run(pip, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"pip install {' '.join(REQUIREMENTS[name])} failed: {last_error(done.stderr)}"
        stamp.write_text(wanted)
    probe = [str(folder / PROBES[name][0]), *PROBES[name][1:]]
    ran = subprocess.run(probe, capture_output=True, text=True, check=False)
    if ran.returncode != 0:
        return f"{name} is installed but does not run: {last_error(ran.stderr)}"
    return folder


def last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line and not line.startswith("WARNING:")]
    return lines[-1][:300] if lines else "(no message)"


def wrk() -> str | None:
    """None once `wrk` is on PATH (apt-get install -y wrk if not); else why not."""
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0:
        return "wrk is missing and installing it needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"]):
        subprocess.run(argv, env=env, capture_output=True, check=False, timeout=600)
        if shutil.which("wrk"):
            return None
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "wrk"],
        env=env,
        capture_output=True,
        check=False,
        timeout=600,
    )
    return None if shutil.which("wrk") else "apt-get install -y wrk failed"
