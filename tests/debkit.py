"""The packages as tests build them: the wheel and sdist (`python -m build`), two revisions
of the .deb (packaging/deb/build.sh, then the same tree repacked as revision 2), and the
host's / under a copy-on-write overlay for dpkg to install into."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_DEB = ROOT / "packaging" / "deb" / "build.sh"
MAX_BUILD_SECONDS = 600


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Debs:
    first: Path  # revision 1
    second: Path  # revision 2, the upgrade


def run(
    cmd: Sequence[str | Path], timeout: float = MAX_BUILD_SECONDS, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in cmd], capture_output=True, text=True, check=False,
        timeout=timeout, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


def need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/setup --test installs them)")


def can_unshare_mounts() -> str | None:
    """Why a private mount namespace with an overlay cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root: the venv is built at /opt/bridgehead in a private mount namespace"
    probe = run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs",
                 "probe", "/mnt"])  # fmt: skip
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


def build_dists(out: Path) -> Dists:
    built = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT])
    assert built.returncode == 0, built.stderr[-3000:]
    return Dists(next(out.glob("bridgehead-*.whl")), next(out.glob("bridgehead-*.tar.gz")))


def build_debs(dists: Dists, out: Path, scratch: Path) -> Debs:
    """Revision 1 from build.sh and revision 2 repacked from it; skipped (saying why) where
    the tools or the mount namespace build.sh needs are missing."""
    need("dpkg-deb", "objdump", "unshare")
    if not Path("/usr/bin/python3").exists():
        pytest.skip("Debian's /usr/bin/python3 is missing: the venv is built from it")
    why = can_unshare_mounts()
    if why:
        pytest.skip(why)
    built = run([BUILD_DEB, dists.wheel, out, "1"])
    assert built.returncode == 0, built.stderr[-3000:]
    first = Path(built.stdout.strip().splitlines()[-1])
    return Debs(first, next_revision(first, scratch))


def next_revision(deb: Path, scratch: Path) -> Path:
    """The same package as revision 2: unpacked and rebuilt by dpkg-deb with the new Version
    (a second build.sh run would take as long as the first and make the same files)."""
    tree = scratch / "tree"
    assert run(["dpkg-deb", "--raw-extract", deb, tree]).returncode == 0
    control = tree / "DEBIAN" / "control"
    version = run(["dpkg-deb", "--field", deb, "Version"]).stdout.strip()
    upstream = version.rsplit("-", 1)[0]
    control.write_text(control.read_text().replace(f"Version: {version}", f"Version: {upstream}-2"))
    second = deb.with_name(deb.name.replace(f"_{version}_", f"_{upstream}-2_"))
    rebuilt = run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", tree, second])
    assert rebuilt.returncode == 0, rebuilt.stderr
    return second


class ThrowawayRoot:
    """The host's / under a copy-on-write overlay whose writes land in `upper`: dpkg runs
    chrooted into it, with an empty /run (no systemd running) and `carry` at /run/carry."""

    def __init__(self, base: Path, carry: Path) -> None:
        self.upper, self.work, self.merged = base / "upper", base / "work", base / "merged"
        for folder in (self.upper, self.work, self.merged):
            folder.mkdir()
        self.carry = carry

    def __call__(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        script = (
            'set -e; m="$1"; shift;'
            ' mount -t overlay throwaway -o "lowerdir=/,upperdir=$U,workdir=$W" "$m";'
            ' mount -t proc proc "$m/proc"; mount --rbind /dev "$m/dev";'
            ' mount -t tmpfs run "$m/run"; mkdir "$m/run/carry";'
            ' mount --bind "$C" "$m/run/carry"; exec chroot "$m" "$@"'
        )
        env = {"U": str(self.upper), "W": str(self.work), "C": str(self.carry),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}  # fmt: skip
        return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                    "throwaway", self.merged, *cmd], env=env)  # fmt: skip

    def path(self, inside: str) -> Path:
        """Where a file the root wrote lies (`upper`; only what changed is there)."""
        return self.upper / inside.lstrip("/")
