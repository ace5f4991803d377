# The distribution installs one import name, `bridgehead`: its folders are `bridgehead.agent`,
# `bridgehead.adapters`, `bridgehead.certs` and `bridgehead.relay`, so installing Bridgehead
# beside distributions named `agent` or `adapters` breaks neither.
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(into), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return next(into.glob("bridgehead-*.whl"))


def python_in(folder: Path, python: str, code: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([python, "-c", code], cwd=folder, capture_output=True, check=False)


def test_the_wheel_holds_no_top_level_package_but_bridgehead(tmp_path: Path) -> None:
    """Every file of the wheel lies under `bridgehead/` (or its metadata), each folder is
    there with its py.typed marker, the health page's files are there, and the console
    scripts name the new modules."""
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(metadata).decode()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"bridgehead", metadata.split("/", 1)[0]}
    for folder in ("agent", "adapters", "certs", "relay"):
        assert f"bridgehead/{folder}/__init__.py" in names
        assert f"bridgehead/{folder}/py.typed" in names
    assert "bridgehead/packaging/linux/bridgehead.service" in names  # service install writes it
    assert "bridgehead/packaging/linux/bridgehead-relay.service" in names
    for page_file in ("index.html", "login.html", "page.js", "dom.js", "events.js", "page.css"):
        assert f"bridgehead/agent/admin/static/{page_file}" in names
    assert "bridgehead = bridgehead.agent.cli:main" in scripts
    assert "bridgehead-relay = bridgehead.relay.cli:main" in scripts


def test_a_fresh_environment_with_the_wheel_imports_only_bridgehead(tmp_path: Path) -> None:
    """In a new virtual environment holding only the wheel, `import agent` fails and
    `import bridgehead.agent` works."""
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # what pip would place, without fetching the dependencies
    python = str(venv / "bin" / "python")
    old = python_in(tmp_path, python, "import agent")  # in tmp_path: not beside ./agent
    assert old.returncode != 0
    assert b"No module named 'agent'" in old.stderr
    new = python_in(tmp_path, python, "import bridgehead.agent, bridgehead.relay")
    assert new.returncode == 0
