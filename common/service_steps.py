"""The steps of installing or removing a service, as data: each one can be described (for
`--dry-run`) or carried out, under a root folder (`/` for real; a temporary folder in tests)
and with a command runner that can be replaced, so the whole plan is tested here without
touching the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridgehead.common.commands import Failure, UsageError
from bridgehead.common.files import write_atomically

Runner = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class WriteFile:
    path: Path
    text: str
    mode: int

    def describe(self) -> str:
        body = "".join(f"    | {line}\n" for line in self.text.splitlines())
        return f"write {self.path} (mode {self.mode:04o}):\n{body}".rstrip("\n")


@dataclass(frozen=True)
class MakeFolder:
    path: Path
    mode: int

    def describe(self) -> str:
        return f"make folder {self.path} (mode {self.mode:04o})"


@dataclass(frozen=True)
class Remove:
    path: Path

    def describe(self) -> str:
        return f"remove {self.path}"


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    unless: tuple[str, ...] = ()
    """A command whose success means this step is already done (e.g. the user exists)."""

    def describe(self) -> str:
        done = f"  (unless `{' '.join(self.unless)}` succeeds)" if self.unless else ""
        return "run " + " ".join(self.argv) + done


Step = WriteFile | MakeFolder | Remove | Run


def run_command(argv: Sequence[str]) -> None:
    """Run a system command; its failure is one sentence naming it."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {reason[0]}")


def succeeds(argv: Sequence[str]) -> bool:
    return subprocess.run(list(argv), capture_output=True, check=False).returncode == 0  # noqa: S603


def carry_out(
    steps: Sequence[Step],
    root: Path = Path("/"),
    run: Runner = run_command,
    check: Callable[[Sequence[str]], bool] = succeeds,
) -> None:
    for step in steps:
        match step:
            case WriteFile(path=path, text=text, mode=mode):
                write_atomically(_under(root, path), text.encode(), mode)
            case MakeFolder(path=path, mode=mode):
                target = _under(root, path)
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(mode)
            case Remove(path=path):
                target = _under(root, path)
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            case Run(argv=argv, unless=unless):
                if not (unless and check(unless)):
                    run(argv)


def _under(root: Path, path: Path) -> Path:
    return root / path.relative_to(path.anchor)


def perform(action: str, steps: Sequence[Step], problem: str | None, *, dry_run: bool) -> str:
    """Print-or-do for a service command: the plan (with `problem` first) for a dry run;
    else, unless `problem` or not root, carry the steps out. The text to print; UsageError
    or Failure (one sentence) when it cannot be done."""
    if dry_run:
        return "\n".join(
            ([f"problem: {problem}"] if problem else []) + [s.describe() for s in steps]
        )
    if problem:
        raise UsageError(problem)
    if os.name == "posix" and os.geteuid() != 0:
        raise UsageError(f"service {action} changes the system: run it as root (sudo)")
    try:
        carry_out(steps)
    except (RuntimeError, OSError) as exc:
        raise Failure(f"service {action} stopped part-way: {exc}") from None
    return f"service {action}: done"
