# What a caller is told when the database refuses a statement because of the request's
# content: the class (409 constraint, 400 value) and a detail naming the column or constraint,
# parsed from the driver's message, with identifiers only and never a value from it.
from __future__ import annotations

import pytest

from bridgehead.adapters import errors
from bridgehead.adapters.dialects.mysql import MySQLDialect
from bridgehead.adapters.dialects.postgresql import PostgreSQLDialect

PG = PostgreSQLDialect()
MARIA = MySQLDialect()
MA = "[ma-3.1.15][10.11.19-MariaDB-0+deb12u1]"

POSTGRES = [
    (
        "23502",
        '[23502] ERROR: null value in column "body" of relation "notes" violates not-null '
        "constraint\nDETAIL: Failing row contains (2, null, s3cret).",
        ["not-null constraint on column 'body'"],
    ),
    (
        "23503",
        '[23503] ERROR: insert or update on table "ch" violates foreign key constraint '
        '"ch_pid_fkey"\nDETAIL: Key (pid)=(9) is not present in table "pa".',
        ["foreign key constraint 'ch_pid_fkey' on column 'pid'", "does not exist"],
    ),
    (
        "23503",
        '[23503] ERROR: update or delete on table "pa" violates foreign key constraint '
        '"ch_pid_fkey" on table "ch"\nDETAIL: Key (id)=(1) is still referenced from table "ch".',
        ["'ch_pid_fkey' on column 'id'", "still refer to this row"],
    ),
    (
        "23505",
        '[23505] ERROR: duplicate key value violates unique constraint "ch_lower"\n'
        "DETAIL: Key (lower(email))=(s3cret@x) already exists.",
        ["unique constraint 'ch_lower';"],
    ),
    (
        "23514",
        '[23514] ERROR: new row for relation "ch" violates check constraint "ch_amt_check"\n'
        "DETAIL: Failing row contains (2, 1, null, -1, s3cret).",
        ["check constraint 'ch_amt_check'"],
    ),
]


@pytest.mark.parametrize(("sqlstate", "message", "named"), POSTGRES)
def test_postgresql_constraint_details(sqlstate: str, message: str, named: list[str]) -> None:
    """PostgreSQL's 23502/23503/23505/23514 are 409s naming the column or constraint; an
    expression key (lower(email)) is not named, and no value is ever repeated."""
    assert PG.classify(sqlstate, message) is errors.ConstraintViolated
    detail = PG.explain(sqlstate, message)
    assert detail is not None
    for part in named:
        assert part in detail
    assert "s3cret" not in detail
    assert "lower(" not in detail


MARIADB = [
    (
        "HY000",
        f"[HY000] {MA}Field 'length' doesn't have a default value (1364) (SQLExecDirectW)",
        errors.ConstraintViolated,
        "not-null constraint on column 'length'",
    ),
    (
        "23000",
        f"[23000] {MA}Duplicate entry 's3cret for key 'x'' for key 'email' (1062)",
        errors.ConstraintViolated,
        "unique constraint 'email'",
    ),
    (
        "23000",
        f"[23000] {MA}Cannot add or update a child row: a foreign key constraint fails "
        "(`db`.`ch`, CONSTRAINT `ch_ibfk_1` FOREIGN KEY (`pid`) REFERENCES `pa` (`id`)) (1452)",
        errors.ConstraintViolated,
        "foreign key constraint 'ch_ibfk_1' on column 'pid'",
    ),
    (
        "23000",
        f"[23000] {MA}CONSTRAINT `ch.amt` failed for `db`.`ch` (4025) (SQLExecDirectW)",
        errors.ConstraintViolated,
        "check constraint 'ch.amt'",
    ),
    (
        "01000",
        f"{MA}Data truncated for column 'rating' at row 1 (1265)",
        errors.ValueRejected,
        "for column 'rating'",
    ),
    (
        "22007",
        f"[22007] {MA}Incorrect string value: '\\xF0\\x9F\\x98\\x80 for column `x`' for column "
        "`db`.`f`.`title` at row 1 (1366) (SQLExecDirectW)",
        errors.TextNotStorable,
        "column 'title': it holds characters",
    ),
    (
        "22007",
        f"[22007] {MA}Incorrect integer value: 's3cret' for column `db`.`f`.`n` at row 1 (1366)",
        errors.ValueRejected,
        "for column 'n'",
    ),
]


@pytest.mark.parametrize(("sqlstate", "message", "kind", "named"), MARIADB)
def test_mariadb_details_by_server_error_number(
    sqlstate: str, message: str, kind: type[errors.SourceError], named: str
) -> None:
    """MariaDB errors are classified by the server's number (HY000 1364 is a constraint like
    PostgreSQL's 23502); the detail names the last column or key in the message, never a
    value, even a value that looks like a name."""
    assert MARIA.classify(sqlstate, message) is kind
    detail = MARIA.explain(sqlstate, message)
    assert detail is not None
    assert named in detail
    assert "s3cret" not in detail
    assert "'x'" not in detail


def test_collation_error_names_the_column_of_the_emoji_parameter() -> None:
    """MariaDB's collation error (1267) names no column: the statement's own parameters tell which
    column the 4-byte UTF-8 value was compared with."""
    message = f"[HY000] {MA}Illegal mix of collations (utf8mb3_general_ci,IMPLICIT) and (1267)"
    failure = MARIA.classify("HY000", message)("db", message, detail=None)
    assert isinstance(failure, errors.TextNotStorable)
    sql = "SELECT `id`, `title` FROM `films` WHERE (`id` > ? AND `title` = ?) LIMIT 101"
    refined = MARIA.refine(failure, sql, [5, "a😀"])
    assert refined.status == 400
    assert "column 'title'" in refined.public_detail
    assert "😀" not in refined.public_detail


def test_a_collation_error_over_an_in_list_is_the_callers_text() -> None:
    """With three or more operands (`title IN (?, ?)`) MariaDB says 1270 instead of 1267: the
    same 4-byte text in a utf8mb3 comparison, a 400 naming the column, not a 500."""
    message = (
        f"[HY000] {MA}Illegal mix of collations (utf8mb3_general_ci,IMPLICIT), "
        "(utf8mb4_general_ci,COERCIBLE), (utf8mb4_general_ci,COERCIBLE) for operation 'in' (1270)"
    )
    failure = MARIA.classify("HY000", message)("db", message, detail=None)
    assert isinstance(failure, errors.TextNotStorable)
    sql = "SELECT `id` FROM `films` WHERE `title` IN (?, ?) LIMIT 101"
    refined = MARIA.refine(failure, sql, ["a😀", "b"])
    assert refined.status == 400
    assert "column 'title'" in refined.public_detail


def test_only_known_server_errors_in_warnings_mean_failure() -> None:
    """A warning naming a server error Bridgehead knows (1265, from Connector/ODBC's prepared
    statements) means the statement failed; a notice or another warning does not."""
    assert MARIA.reports_failure("01000", f"{MA}Data truncated for column 'r' at row 1 (1265)")
    assert not MARIA.reports_failure("01000", f"{MA}'@@tx_isolation' is deprecated (1287)")
    assert not PG.reports_failure("00000", "NOTICE: hello")


def test_mariadb_binds_unsigned_64_bit_integers_exactly() -> None:
    """Integers past the signed 64-bit range are bound as exact decimals (pyodbc would raise
    OverflowError), smaller ones as they are."""
    assert str(MARIA.bind(18446744073709551615)) == "18446744073709551615"
    assert MARIA.bind(2**63 - 1) == 2**63 - 1
    assert MARIA.bind(True) is True
