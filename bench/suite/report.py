# Writes the report of a run as Markdown: the machine, the versions, the commit and the exact
# commands; each measure's median, min and max over the rounds; each target of issue 17 with
# its figure and "met", "missed" or "not measured yet"; and the data for the chart.
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from figures import Figures
from targets import TARGETS, judge

ROOT = Path(__file__).resolve().parent.parent.parent


def machine(revision: str) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cores = sum(1 for line in cpuinfo if line.startswith("processor"))
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1]) / 1024**2
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    return [
        f"- machine: {cores} cores ({model}), {total:.1f} GiB memory (from /proc)",
        f"- OS: {release.get('PRETTY_NAME', '?').strip(chr(34))}, Linux {platform.release()}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- commit: {revision} (at the start of the run)",
    ]


def commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "HEAD") + (" (with uncommitted changes)" if dirty else "")


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def measures(figures: Figures) -> list[str]:
    lines = ["| measure | median | min | max | unit | rounds |", "|---|---|---|---|---|---|"]
    for name, got in figures.values.items():
        median, low, high = figures.spread(name) or (0.0, 0.0, 0.0)
        lines.append(
            f"| {name} | {number(median)} | {number(low)} | {number(high)} | "
            f"{figures.units[name]} | {len(got)} |"
        )
    return lines


def verdicts(figures: Figures) -> tuple[list[str], list[dict[str, object]]]:
    """The targets table, and the chart's ratios."""
    lines = ["| target | figure (median, min-max) | verdict |", "|---|---|---|"]
    ratios: list[dict[str, object]] = []
    for target in TARGETS:
        got, verdict = judge(figures, target)
        if got:
            median = statistics.median(got)
            unit = figures.units.get(target.figure, "")
            unit = f" {unit}" if unit and unit != "ratio" else ""
            shown = f"{number(median)}{unit} ({number(min(got))}-{number(max(got))})"
            if target.chart:
                ratios.append(
                    {
                        "label": target.chart,
                        "median": median,
                        "min": min(got),
                        "max": max(got),
                        "target": target.bound,
                        "met": verdict,
                    }
                )
        else:
            shown = "-"
        lines.append(f"| {target.text} | {shown} | {verdict} |")
    return lines, ratios


def write(
    out: Path, figures: Figures, commands: list[str], notes: list[str], title: str
) -> list[dict[str, object]]:
    """The Markdown report at `out`; returns the chart's ratios."""
    targets, ratios = verdicts(figures)
    skipped = [f"- {name}: skipped: {why}" for name, why in figures.skipped.items()]
    text = [
        "# Benchmarks (issue 17)",
        "",
        title,
        "",
        "Written by `bench/run`; do not edit by hand. Figures are medians of the rounds, with",
        "the min and max beside them; every contender ran in the same run, in turns per round.",
        "",
        "## Machine and versions",
        "",
        *machine(figures.commit),
        "",
        "## Targets",
        "",
        *targets,
        "",
        "![headline ratios](benchmarks.png)",
        "",
        "## Measures",
        "",
        *measures(figures),
        "",
        "## Skipped",
        "",
        *(skipped or ["- nothing"]),
        "",
        "## Notes",
        "",
        *notes,
        *(f"- {name}: {text}" for name, text in figures.notes.items()),
        "",
        "## Commands",
        "",
        "```",
        *commands,
        "```",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(text))
    return ratios


def environment_note() -> str:
    load = os.getloadavg()
    return f"- load average at the end of the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
