# The figures of a run: each measure's value per round, by name, with its unit; the median,
# min and max the report gives; and a "turns" helper that alternates contenders per round.
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Figures:
    values: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    commit: str = ""

    def note(self, name: str, text: str) -> None:
        print(f"    {name}: {text}", flush=True)
        self.notes[name] = text

    def add(self, name: str, value: float, unit: str) -> None:
        self.values.setdefault(name, []).append(value)
        self.units[name] = unit
        print(f"    {name}: {value:,.3f} {unit}", flush=True)

    def skip(self, name: str, why: str) -> None:
        if name not in self.skipped:
            print(f"  {name}: skipped: {why}", flush=True)
        self.skipped[name] = why

    def median(self, name: str) -> float | None:
        got = self.values.get(name)
        return statistics.median(got) if got else None

    def spread(self, name: str) -> tuple[float, float, float] | None:
        got = self.values.get(name)
        return (statistics.median(got), min(got), max(got)) if got else None

    def as_json(self) -> dict[str, object]:
        return {"values": self.values, "units": self.units, "skipped": self.skipped}


def turns(items: Sequence[T], round_number: int) -> list[T]:
    """`items` in order on even rounds, reversed on odd ones, so no contender always goes
    first (or right after the same neighbour)."""
    return list(items) if round_number % 2 == 0 else list(reversed(items))
