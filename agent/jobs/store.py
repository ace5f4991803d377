"""A job's durable state in `state_dir/jobs/NAME/`: `state.json` (the watermark, the last
planned run, the next run number and the checkpoint of a run under way) and `runs/ID.json`
(one reconciliation report per run, the newest `keep_runs` kept).

Rules:
- Every file is replaced atomically (`common.files`): a process killed at any point leaves
  the state before a step or after it, never half of one.
- The checkpoint moves only after its chunk is acknowledged; the watermark moves with it, so
  a failed or killed run never advances past what the sink holds.
- `claim` takes a per-job file lock for the whole run: two runs of one job never overlap,
  whether both are in one agent or one is `bridgehead jobs run` beside it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bridgehead.agent.errors import RunUnderWay
from bridgehead.certs.keyfiles import ensure_private_dir, write_private

Report = dict[str, Any]


@dataclass
class Checkpoint:
    """Where a run under way stands: enough to resume it as if it had not stopped."""

    run: int
    planned: str | None
    dry_run: bool
    bound: Any
    """The upper bound of the incremental column, frozen when the run started."""
    chunk: int = 0
    """Chunks acknowledged so far (the next one's number)."""
    position: Any = None
    """Export: the keyset position after the last acknowledged row (the watermark's form);
    import: the input's position after the last committed chunk, and the phase."""
    counts: dict[str, Any] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)
    """Each acknowledged chunk's SHA-256: the run's checksum is the digest of these."""
    started: str = ""
    watermark_before: list[Any] | None = None

    @property
    def checksum(self) -> str:
        """The run's checksum: the SHA-256 of its chunks' digests, in order."""
        return hashlib.sha256("".join(self.digests).encode()).hexdigest()


@dataclass
class JobState:
    watermark: list[Any] | None = None
    last_planned: str | None = None
    next_run: int = 1
    current: Checkpoint | None = None

    def to_json(self) -> bytes:
        data = {
            "watermark": self.watermark, "last_planned": self.last_planned,
            "next_run": self.next_run,
            "current": None if self.current is None else vars(self.current),
        }  # fmt: skip
        return orjson.dumps(data, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes) -> JobState:
        data = orjson.loads(raw)
        current = data.get("current")
        return cls(
            watermark=data.get("watermark"), last_planned=data.get("last_planned"),
            next_run=int(data.get("next_run", 1)),
            current=None if current is None else Checkpoint(**current),
        )  # fmt: skip


class JobStore:
    def __init__(self, state_dir: Path, name: str, keep_runs: int = 100) -> None:
        self.folder = state_dir / "jobs" / name
        self.keep_runs = keep_runs
        self._state = self.folder / "state.json"
        self._runs = self.folder / "runs"

    def load(self) -> JobState:
        try:
            raw = self._state.read_bytes()
        except FileNotFoundError:
            return JobState()
        try:
            return JobState.from_json(raw)
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{self._state} is damaged ({exc}); move it away to start this job afresh "
                "(its next incremental run then exports every row)"
            ) from None

    def save(self, state: JobState) -> None:
        ensure_private_dir(self.folder)
        write_private(self._state, state.to_json())

    def record(self, report: Report) -> None:
        """Write (or rewrite) one run's report, then drop reports beyond `keep_runs`."""
        ensure_private_dir(self._runs)
        write_private(self._runs / f"{report['id']}.json", orjson.dumps(report))
        for old in self.run_ids()[self.keep_runs :]:
            (self._runs / f"{old}.json").unlink(missing_ok=True)

    def run_ids(self) -> list[int]:
        """Run numbers with a report, newest first."""
        try:
            names = os.listdir(self._runs)
        except FileNotFoundError:
            return []
        return sorted((int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()),
                      reverse=True)  # fmt: skip

    def report(self, run: int) -> Report | None:
        try:
            return orjson.loads((self._runs / f"{run}.json").read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def reports(self, limit: int) -> list[Report]:
        found = (self.report(run) for run in self.run_ids()[:limit])
        return [report for report in found if report is not None]

    def claim(self) -> int:
        """Take this job's run lock (released by `release`); Busy at once if another run,
        in this process or another, holds it."""
        ensure_private_dir(self.folder)
        fd = os.open(self.folder / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
        if os.name == "posix":
            import fcntl  # noqa: PLC0415 - POSIX only

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunUnderWay(
                    f"job {self.folder.name!r} has a run under way; wait for it to end "
                    f"(GET /v1/jobs/{self.folder.name}/runs) and try again"
                ) from None
        return fd

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)
