# Draws docs/benchmarks.png from the headline ratios: one bar per ratio (the median, with the
# rounds' min and max as an error bar) and its target as a line. Run with the chart peer's
# Python (matplotlib, Agg backend): `python chart.py RATIOS.json OUT.png`.
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt


def draw(ratios: list[dict[str, float | str]], out: str, title: str) -> None:
    figure, axes = plt.subplots(figsize=(10, 4.8), dpi=110)
    labels = [str(r["label"]) for r in ratios]
    medians = [float(r["median"]) for r in ratios]
    low = [float(r["median"]) - float(r["min"]) for r in ratios]
    high = [float(r["max"]) - float(r["median"]) for r in ratios]
    colors = ["#2e7d32" if r["met"] == "met" else "#c62828" for r in ratios]
    axes.bar(labels, medians, color=colors, yerr=[low, high], capsize=4, alpha=0.85)
    for x, r in enumerate(ratios):
        axes.hlines(float(r["target"]), x - 0.4, x + 0.4, colors="black", linestyles="--")
        axes.annotate(
            f"{float(r['median']):.2f}",
            (x, max(float(r["max"]), float(r["target"]))),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    axes.set_yscale("log")
    axes.set_ylabel("ratio (log scale); dashed line: the target")
    axes.set_title(title, fontsize=10)
    plt.setp(axes.get_xticklabels(), rotation=20, ha="right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out)


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    draw(data["ratios"], sys.argv[2], data["title"])
