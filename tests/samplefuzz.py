# Runs schemathesis's own engine (every phase: examples, coverage, fuzzing, stateful; every
# check it has, positive and negative) against a live agent from the document the agent
# serves, and turns what it found into one line per disagreement: the phase, the check, the
# operation, the request as curl, and the answer's status and body.
#
# Rules: reproducible (a fixed seed, deterministic generation, one worker); bounded (a few
# examples per operation and few stateful steps, so a sample database takes seconds).
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder

SEED = 20240501
MAX_EXAMPLES = 6
MAX_STEPS = 6


@dataclass(frozen=True)
class Finding:
    """One failed check, with the request that made it fail and the agent's answer."""

    phase: str
    check: str
    operation: str
    title: str
    request: str
    status: int | None
    body: str

    def __str__(self) -> str:
        return (
            f"[{self.phase}] {self.check} on {self.operation}: {self.title}\n"
            f"    {self.request}\n    -> {self.status} {self.body}"
        )


def engine_config(base_url: str, key: str) -> SchemathesisConfig:
    """Every check and phase, both generation modes, a fixed seed, the caller's bearer key.

    positive_data_acceptance also expects 412: a well-formed If-Match that is not the row's
    current ETag is refused by design (the document lists 412), and no document can say which
    ETag is current. No NUL characters in generated strings: PostgreSQL's text cannot hold
    one and refuses it (a 400), a limit of the database, not of the document."""
    accepted = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "workers": 1,
            "request-timeout": 30,
            "suppress-health-check": ["all"],
            "auth": {"openapi": {"bearer": {"bearer": key}}},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "allow-x00": False,
            },
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": accepted},
            },
            "phases": {"stateful": {"max-steps": MAX_STEPS}},
        }
    )


def fuzz(document: dict[str, Any], base_url: str, key: str) -> list[Finding]:
    """Run the engine over document (blocking: call it on a thread); every failed check."""
    schema = schemathesis.openapi.from_dict(document, config=engine_config(base_url, key))
    found: list[Finding] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            found += _findings(event.phase.value, event.recorder)
        elif isinstance(event, events.NonFatalError):
            found.append(Finding("engine", "error", event.label, str(event.value), "", None, ""))
        elif isinstance(event, events.FatalError):
            found.append(Finding("engine", "fatal", "", str(event.exception), "", None, ""))
    return found


def _findings(phase: str, recorder: ScenarioRecorder) -> list[Finding]:
    found = []
    for case_id, nodes in recorder.checks.items():
        for node in nodes:
            if node.failure_info is None:
                continue
            interaction = recorder.interactions.get(case_id)
            response = interaction.response if interaction else None
            status = response.status_code if response else None
            body = (response.content or b"")[:400].decode("utf-8", "replace") if response else ""
            failure, request = node.failure_info.failure, node.failure_info.code_sample
            found.append(
                Finding(phase, node.name, recorder.label, failure.title, request, status, body)
            )
    return found


def distinct(found: list[Finding]) -> list[Finding]:
    """One finding per (check, operation, title): the first, in the order found."""
    seen: dict[tuple[str, str, str], Finding] = {}
    for f in found:
        seen.setdefault((f.check, f.operation, f.title), f)
    return list(seen.values())
