# Schemathesis, with every check it has, against live agents over the public sample databases
# (Chinook on SQLite, PostgreSQL and MariaDB; Sakila on PostgreSQL), driven by the document
# each agent serves at GET /v1/openapi.json: no server error, no answer the document does not
# describe, no valid request refused and no invalid one accepted.
#
# Rules of the suite:
# - Writes are exercised on the writable copy: every table with a primary key takes every
#   operation, except inserts where a rule rewrites them into another table (a user would not
#   configure inserts there: the database cannot return the stored row); views are read.
# - Reproducible and bounded: a fixed seed, deterministic generation, a few examples per
#   operation (tests/samplefuzz.py).
# - Every finding fails the test, apart from the exclusions in EXCUSED, each narrow (one
#   check, one kind of answer) and with its reason.
from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

# Loaded here on the main thread: schemathesis imports it lazily, and a first import inside
# the fuzzing thread (pytest rewrites schemathesis, a pytest plugin) can trip CPython 3.11's
# "AST constructor recursion depth mismatch" bug.
import schemathesis.specs.openapi.schemas  # noqa: F401
from openapi_spec_validator import validate
from samplecatalog import Relation
from sampledbs import WRITE, Sample, listing, serving
from samplefuzz import Finding, distinct, fuzz

DATABASES = list(listing()) or ["sample-databases-missing"]

Excuse = Callable[[Finding], bool]
EXCUSED: dict[str, Excuse] = {
    # Schemathesis sends the same Idempotency-Key (a fixed value such as "0") with different
    # requests; the agent rightly answers the second 422, as the document says: a key names
    # one request. A refusal that depends on an earlier request, not on this one's content.
    "an Idempotency-Key reused for another request": lambda f: (
        f.check == "positive_data_acceptance"
        and f.status == 422
        and "Idempotency-Key was already used for a different request" in f.body
    ),
    # MariaDB's utf8mb3 columns (Chinook's) cannot store characters outside the Basic
    # Multilingual Plane: the database refuses them, and the agent says so in a 400 naming the
    # column. The document does not know a column's character set to say it.
    "a 4-byte character in a utf8mb3 column": lambda f: (
        f.check == "positive_data_acceptance"
        and f.status == 400
        and "problems/textnotstorable" in f.body
    ),
    # The catalog carries no character length (character(20), varchar(n)) and no bounds of
    # an integer domain (Sakila's year), so the document cannot give maxLength or the range;
    # the database refuses such a value in a body, a 400 (reported: the introspection should
    # carry them, and the problem should name the column).
    "a body value past a length or domain bound the catalog does not know": lambda f: (
        f.check == "positive_data_acceptance"
        and f.operation.split(" ")[0] in ("POST", "PATCH", "Stateful")
        and f.status == 400
        and "problems/valuerejected" in f.body
    ),
    # Stateful links that schemathesis infers fill a filter parameter with a bare value from
    # an earlier answer (customer_id=49), which the filter's pattern (op.value) forbids: the
    # request was never schema-valid.
    "a filter without operator from an inferred link": lambda f: (
        f.phase == "stateful"
        and f.check == "positive_data_acceptance"
        and f.status == 400
        and "is not an operator; write" in f.body
    ),
    # A cursor is the agent's own signed token: the document can only say "a string", and a
    # made-up one is refused, as the cursor parameter's description says.
    "a cursor the agent did not issue": lambda f: (
        f.check == "positive_data_acceptance"
        and f.status == 400
        and '"detail":"cursor is not valid' in f.body
    ),
}


def operations(r: Relation) -> list[str]:
    """Every operation on a table with a primary key (no insert where a rule rewrites
    inserts); read on views and keyless relations."""
    if r.view or not r.primary:
        return ["read"]
    return [op for op in WRITE if op != "insert" or not r.insert_rules]


def unexcused(found: list[Finding]) -> list[Finding]:
    return [f for f in found if not any(excuse(f) for excuse in EXCUSED.values())]


@pytest.mark.parametrize("sample", DATABASES, indirect=True)
async def test_schemathesis_finds_the_agent_true_to_its_document(
    sample: Sample, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every phase and every check of schemathesis, over every operation of an agent serving
    the sample's writable copy, finds no 5xx, no answer outside the document (status, media
    type, headers, body), no schema-valid request refused and no schema-invalid one accepted,
    no ignored credential and no unsupported method answered."""
    folder = await asyncio.to_thread(tmp_path_factory.mktemp, "agent-fuzz")
    async with serving(sample.write, folder, operations) as api:
        status, _, document = await api.get("/v1/openapi.json")
        assert status == 200, document
        await asyncio.to_thread(validate, document)
        found = await asyncio.to_thread(fuzz, document, api.base, api.key)
    failures = distinct(unexcused(found))
    assert not failures, f"{sample.write.name}: {len(failures)} disagreements:\n" + "\n".join(
        map(str, failures)
    )
