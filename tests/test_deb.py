"""The packages: `python -m build` makes the wheel and an sdist that carries packaging/;
packaging/deb/build.sh turns the wheel into a .deb that lintian passes, that holds the venv,
the unit, the copyright and changelog, and that installs, upgrades over itself (keeping the
state folder and its audit log intact) and purges inside a throwaway root; install.sh is
shellcheck-clean, its --dry-run changes nothing, and it installs a wheel in a throwaway root."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from debkit import BUILD_DEB, ROOT, Debs, Dists, ThrowawayRoot, can_unshare_mounts, need, run

from bridgehead.agent.audit import AuditLog, AuditRecord

INSTALL_SH = ROOT / "packaging" / "linux" / "install.sh"
SHELL_SCRIPTS = [
    INSTALL_SH, BUILD_DEB,
    *(ROOT / "packaging" / "deb" / name for name in ("postinst", "prerm", "postrm")),
]  # fmt: skip
UNIT_BY_CLI = "/etc/systemd/system/bridgehead.service"
PURGED = (
    "/opt/bridgehead", "/etc/bridgehead", "/usr/bin/bridgehead",
    "/lib/systemd/system/bridgehead.service", "/var/lib/bridgehead/agent.key",
    UNIT_BY_CLI, "/etc/systemd/system/multi-user.target.wants/bridgehead.service",
)  # fmt: skip


def test_python_m_build_makes_a_wheel_and_an_sdist_with_the_packaging_files(
    dists: Dists,
) -> None:
    """`python -m build` writes both; the sdist holds every package folder, the systemd unit,
    install.sh and the .deb's build script, template and maintainer scripts; of packaging/
    the wheel takes only the two units (`service install` writes them)."""
    with tarfile.open(dists.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for folder in ("agent", "adapters", "certs", "common", "relay"):
        assert f"{folder}/__init__.py" in names
    for packaged in ("linux/bridgehead.service", "linux/install.sh", "deb/build.sh",
                     "deb/control.in", "deb/postinst", "deb/prerm", "deb/postrm",
                     "deb/lintian-overrides", "deb/copyright", "deb/changelog.in"):  # fmt: skip
        assert f"packaging/{packaged}" in names
    with zipfile.ZipFile(dists.wheel) as wheel:
        packaged_in_wheel = [n for n in wheel.namelist() if n.startswith("bridgehead/packaging/")]
    assert sorted(packaged_in_wheel) == [
        "bridgehead/packaging/linux/bridgehead-relay.service",
        "bridgehead/packaging/linux/bridgehead.service",
    ]


def test_the_shell_scripts_are_shellcheck_clean() -> None:
    """install.sh, build.sh and the maintainer scripts pass shellcheck (warnings included)."""
    need("shellcheck")
    checked = run(["shellcheck", *SHELL_SCRIPTS])
    assert checked.returncode == 0, checked.stdout


def test_install_sh_dry_run_prints_the_steps_and_changes_nothing(
    dists: Dists, tmp_path: Path
) -> None:
    """With --dry-run, install.sh names the venv, the pip install of the wheel, both links in
    /usr/bin and `bridgehead service install --dry-run`; no prefix folder appears."""
    prefix = tmp_path / "opt-bridgehead"
    env = {**os.environ, "BRIDGEHEAD_PREFIX": str(prefix), "PYTHON": sys.executable}
    dry = run([INSTALL_SH, dists.wheel, "--dry-run"], env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"-m venv {prefix}" in dry.stdout
    assert f"{prefix}/bin/pip install" in dry.stdout
    for name in ("bridgehead", "bridgehead-relay"):
        assert f"ln -sfn {prefix}/bin/{name} /usr/bin/{name}" in dry.stdout
    assert "service install" in dry.stdout
    assert not prefix.exists()


def test_install_sh_refuses_a_missing_wheel(tmp_path: Path) -> None:
    """A wheel path that does not exist stops install.sh with exit 2 and one sentence."""
    refused = run([INSTALL_SH, tmp_path / "nope.whl", "--dry-run"])
    assert refused.returncode == 2
    assert "no wheel at" in refused.stderr


def test_lintian_passes_with_only_the_listed_overrides(debs: Debs) -> None:
    """lintian reports no error and no warning on the .deb; each tag it overrides is listed in
    packaging/deb/lintian-overrides (usr/share/lintian/overrides/bridgehead) under a comment
    giving its reason."""
    need("lintian")
    checked = run(["lintian", "--show-overrides", debs.first])
    # exit 2 can come from an overridden error shown here; 1 is lintian failing to run
    assert checked.returncode in {0, 2}, checked.stderr
    lines = checked.stdout.splitlines()
    assert [line for line in lines if line[:2] in {"E:", "W:"}] == []
    applied = {line.split()[2] for line in lines if line.startswith("O: bridgehead:")}
    listed = (ROOT / "packaging" / "deb" / "lintian-overrides").read_text().splitlines()
    reasons = {
        line.split()[1]: listed[number - 1]
        for number, line in enumerate(listed)
        if line.startswith("bridgehead:")
    }
    assert applied == set(reasons), "an override that lintian no longer needs, or one missing"
    for tag, above in reasons.items():
        assert above.startswith(("#", "bridgehead:")), f"{tag} has no reason above it"


def test_the_deb_holds_the_venv_unit_links_and_debian_docs(debs: Debs) -> None:
    """dpkg-deb lists the venv's bridgehead executables, the links in /usr/bin, the unit in
    /lib/systemd/system, the lintian overrides, copyright and changelog.Debian.gz, no byte
    code; the control file depends on unixodbc, the venv's python3.X and adduser."""
    listing = run(["dpkg-deb", "--contents", debs.first]).stdout
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for path in ("/opt/bridgehead/bin/bridgehead", "/opt/bridgehead/bin/bridgehead-relay",
                 "/opt/bridgehead/pyvenv.cfg", "/lib/systemd/system/bridgehead.service",
                 "/usr/share/lintian/overrides/bridgehead",
                 "/usr/share/doc/bridgehead/copyright",
                 "/usr/share/doc/bridgehead/changelog.Debian.gz"):  # fmt: skip
        assert path in paths
    assert "/usr/bin/bridgehead -> /opt/bridgehead/bin/bridgehead" in listing
    assert "/usr/bin/bridgehead-relay -> /opt/bridgehead/bin/bridgehead-relay" in listing
    assert not [path for path in paths if path.endswith(".pyc")]
    depends = run(["dpkg-deb", "--field", debs.first, "Depends"]).stdout
    assert "unixodbc" in depends
    assert "adduser" in depends
    assert "python3." in depends


@pytest.fixture
def overlay_root(tmp_path: Path) -> Iterator[ThrowawayRoot]:
    why = can_unshare_mounts()
    if why:
        pytest.skip(why)
    carry = tmp_path / "carry"
    carry.mkdir()
    root = ThrowawayRoot(tmp_path, carry)
    if root("true").returncode != 0:
        pytest.skip("cannot mount an overlay of / in a mount namespace here")
    if root("test", "-e", "/opt/bridgehead").returncode == 0:
        pytest.skip("Bridgehead is installed on this machine: the overlay would start from it")
    yield root
    shutil.rmtree(tmp_path / "work", ignore_errors=True)


@pytest.fixture
def throwaway_root(overlay_root: ThrowawayRoot, debs: Debs) -> ThrowawayRoot:
    for deb in (debs.first, debs.second):
        shutil.copy(deb, overlay_root.carry)
    return overlay_root


def test_install_sh_installs_the_wheel_in_a_throwaway_root(
    overlay_root: ThrowawayRoot, dists: Dists
) -> None:
    """Run for real (as root, no systemd running, no config yet): /opt/bridgehead is a venv
    of the system's python3 with the wheel, /usr/bin/bridgehead and bridgehead-relay link into
    it and run, and install.sh names the commands still to run. With a config in place,
    `--dry-run` passes on to the installed `bridgehead service install --dry-run`, which
    prints its plan."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3 for the throwaway root's venv")
    root = overlay_root
    shutil.copy(INSTALL_SH, root.carry)
    shutil.copy(dists.wheel, root.carry)
    wheel = f"/run/carry/{dists.wheel.name}"
    installed = root("bash", "/run/carry/install.sh", wheel)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "no config at /etc/bridgehead/agent.yaml" in installed.stdout
    assert "sudo bridgehead service install" in installed.stdout
    for name in ("bridgehead", "bridgehead-relay"):
        link = root("readlink", f"/usr/bin/{name}").stdout.strip()
        assert link == f"/opt/bridgehead/bin/{name}"
        assert root(f"/usr/bin/{name}", "--help").returncode == 0
    home = root("/opt/bridgehead/bin/python", "-c", "import sys; print(sys.base_prefix)")
    assert home.stdout.strip() == "/usr"

    with sqlite3.connect(root.carry / "t.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.close()
    (root.carry / "agent.yaml").write_text("sources: {db: {sqlite: t.db}}\nadmin: null\n")
    for name in ("t.db", "agent.yaml"):
        assert root("cp", f"/run/carry/{name}", "/srv/").returncode == 0
    planned = root("bash", "/run/carry/install.sh", wheel, "-c", "/srv/agent.yaml", "--dry-run")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "useradd" in planned.stdout
    assert "systemctl restart bridgehead.service" in planned.stdout
    assert "ExecStart=/opt/bridgehead/bin/bridgehead run -c /srv/agent.yaml" in planned.stdout


def write_audit_log(path: Path, records: int) -> None:
    async def write() -> None:
        log = AuditLog(path)
        await log.start()
        for n in range(records):
            await log.record(AuditRecord(
                time=datetime.now(UTC), request_id=f"req-{n}", principal="key:reporting",
                target="customers", operation="read", rows=1, status=200, duration_ms=1.5,
                via="relay",
            ))  # fmt: skip
        await log.close()

    asyncio.run(write())


def test_install_upgrade_and_purge_in_a_throwaway_root(
    throwaway_root: ThrowawayRoot, debs: Debs
) -> None:
    """Installed without systemd running: the `bridgehead` system user exists, /etc/bridgehead
    is 0750 root:bridgehead, /var/lib/bridgehead 0700 bridgehead, /usr/bin/bridgehead runs.
    The second revision installs over the first: the config and an audit log written by the
    agent's writer stay, and `bridgehead audit verify` passes on it. Purge removes the venv,
    /etc/bridgehead, the user and the state, except the audit log, now owned by root."""
    root = throwaway_root
    first = f"/run/carry/{debs.first.name}"
    second = f"/run/carry/{debs.second.name}"
    installed = root("dpkg", "-i", first)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert root("getent", "passwd", "bridgehead").stdout.startswith("bridgehead:")
    modes = root("stat", "-c", "%a %U %G", "/etc/bridgehead", "/var/lib/bridgehead").stdout
    assert modes.split("\n")[:2] == ["750 root bridgehead", "700 bridgehead bridgehead"]
    helped = root("/usr/bin/bridgehead", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "service" in helped.stdout

    write_audit_log(throwaway_root.carry / "audit.jsonl", records=5)
    (throwaway_root.carry / "agent.yaml").write_text("sources: {}\n")
    copies = {"audit.jsonl": "/var/lib/bridgehead/", "agent.yaml": "/etc/bridgehead/"}
    for name, where in copies.items():
        assert root("cp", f"/run/carry/{name}", where).returncode == 0
    log = "/var/lib/bridgehead/audit.jsonl"
    assert root("chown", "bridgehead:bridgehead", log).returncode == 0  # as the agent writes it
    assert root("touch", "/var/lib/bridgehead/agent.key").returncode == 0
    enabled = PURGED[-1]  # as `bridgehead service install` (systemctl enable) leaves it
    linked = root("sh", "-c", f'mkdir -p "${{0%/*}}" && ln -sf {UNIT_BY_CLI} "$0"', enabled)
    assert linked.returncode == 0, linked.stderr

    upgraded = root("dpkg", "-i", second)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    version = root("dpkg-query", "-W", "-f", "${Version}", "bridgehead").stdout
    assert version.endswith("-2")
    verified = root("/usr/bin/bridgehead", "audit", "verify", log)
    assert verified.returncode == 0, verified.stderr
    assert "5 records, chain intact" in verified.stdout
    assert root("test", "-f", "/etc/bridgehead/agent.yaml").returncode == 0
    assert root("stat", "-c", "%U", log).stdout.strip() == "bridgehead"

    purged = root("dpkg", "--purge", "bridgehead")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    for gone in PURGED:
        assert root("sh", "-c", '[ -e "$0" ] || [ -L "$0" ]', gone).returncode != 0, gone
    assert root("getent", "passwd", "bridgehead").returncode != 0
    assert root("getent", "group", "bridgehead").returncode != 0
    kept = root("stat", "-c", "%U %G", log)
    assert kept.stdout.strip() == "root root"
