# Issue 17's targets, each as a figure of the run (a measure, or a ratio of two measures taken
# round by round) and a bound; judged "met" or "missed" on the median of the rounds.
from __future__ import annotations

import statistics
from dataclasses import dataclass

from figures import Figures


@dataclass(frozen=True)
class Target:
    text: str
    figure: str  # a measure's name, or "A / B" for a ratio of two measures per round
    bound: float
    at_least: bool  # True: figure >= bound is met; False: figure <= bound is met
    chart: str = ""  # a label, if the chart shows it


SQLITE, PG = "Bridgehead keyed GET SQLite", "Bridgehead keyed GET PostgreSQL"
TARGETS = [
    Target(
        "keyed GET SQLite >= 0.35 of the minimal aiohttp handler (same loop)",
        f"{SQLITE} req/s / ceiling on the agent's loop req/s",
        0.35,
        True,
        "SQLite / ceiling",
    ),
    Target("agent CPU per keyed GET SQLite <= 0.15 ms", f"{SQLITE} agent CPU", 0.15, False),
    Target(
        "keyed GET SQLite >= 8x Datasette",
        f"{SQLITE} req/s / Datasette row JSON req/s",
        8,
        True,
        "SQLite / Datasette",
    ),
    Target(
        "keyed GET PostgreSQL >= 8x sandman2",
        f"{PG} req/s / sandman2 req/s",
        8,
        True,
        "PG / sandman2",
    ),
    Target(
        "keyed GET PostgreSQL >= 0.4 of bare pyodbc on 16 connections",
        f"{PG} req/s / bare pyodbc 16 threads req/s",
        0.4,
        True,
        "PG / bare pyodbc",
    ),
    Target("relay CPU per small request <= 0.2 ms", "relay CPU per small request", 0.2, False),
    Target(
        "small requests through the relay >= 0.9 of ssh -R with TLS",
        "relay/ssh+TLS small",
        0.9,
        True,
        "relay / ssh -R+TLS",
    ),
    Target("p50 added by the relay <= 0.5 ms at c=1", "relay p50 added, c=1", 0.5, False),
    Target(
        "p50 added by the relay <= 1 ms at half the slowest path's capacity",
        "relay p50 added, half capacity",
        1.0,
        False,
    ),
    Target(
        "bulk through the relay >= par with ssh -R with TLS",
        "relay/ssh+TLS bulk",
        1.0,
        True,
        "relay bulk / ssh -R+TLS",
    ),
    Target(
        "NDJSON from PostgreSQL >= 0.7 of bare fetchmany",
        "NDJSON agent/fetchmany",
        0.7,
        True,
        "NDJSON / fetchmany",
    ),
    Target(
        "NDJSON from PostgreSQL through the relay >= 0.6 of bare fetchmany",
        "NDJSON via relay/fetchmany",
        0.6,
        True,
        "NDJSON relay / fetchmany",
    ),
    Target(
        "agent peak-RSS growth <= 32 MiB over the stream", "NDJSON agent peak-RSS growth", 32, False
    ),
    Target("idle agent RSS <= 70 MB (taken as MiB)", "idle RSS", 70, False),
    Target("start to ready <= 1 s on SQLite", "start to ready (/readyz 200)", 1.0, False),
    Target(
        "1,000 concurrent streams over one tunnel connection (RSS per stream reported)",
        "streams in flight at once over one tunnel connection",
        1000,
        True,
    ),
    Target(
        "100 agents on one relay (RSS per agent, time for all to reconnect)",
        "relay RSS per agent",
        float("inf"),
        False,
    ),
]


def rounds(figures: Figures, figure: str) -> list[float]:
    """The figure's value in each round: a measure's own, or a ratio taken round by round."""
    if " / " not in figure:
        return figures.values.get(figure, [])
    top, bottom = (figures.values.get(part, []) for part in figure.split(" / "))
    return [a / b for a, b in zip(top, bottom, strict=False) if b]


def judge(figures: Figures, target: Target) -> tuple[list[float], str]:
    """The rounds' values and the verdict: met, missed or not measured yet."""
    got = rounds(figures, target.figure)
    if not got:
        return got, "not measured yet"
    value = statistics.median(got)
    if target.bound == float("inf"):
        return got, "reported (no bound set)"
    met = value >= target.bound if target.at_least else value <= target.bound
    return got, "met" if met else "missed"
