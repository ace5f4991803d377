"""The error table (`agent.errors.ANSWERS`) is the one list of error statuses: the error
mapping answers with no status it lacks, and the OpenAPI document publishes each of them."""

from __future__ import annotations

from bridgehead.adapters import errors as source
from bridgehead.agent import errors as agent_errors
from bridgehead.agent.api.problems import from_exception
from bridgehead.agent.errors import ANSWERS
from bridgehead.common import errors as common_errors


def _every_error() -> set[type[Exception]]:
    found: set[type[Exception]] = set()
    todo: list[type[Exception]] = [common_errors.ApiError, source.SourceError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_is_in_the_entry_for_its_status() -> None:
    """Each error the agent, the adapters or common code can raise is listed under its own
    status, with the nearest listed ancestor counting for a subclass that only rewords it."""
    for cls in _every_error():
        answer = ANSWERS.get(cls.status)
        assert answer is not None, f"{cls.__name__}: status {cls.status} is not in ANSWERS"
        assert any(issubclass(cls, listed) for listed in answer.errors), cls
        for listed in answer.errors:
            assert listed.status == cls.status or not issubclass(cls, listed), (cls, listed)


def test_every_listed_error_answers_with_its_status() -> None:
    """The mapping turns each listed error into a problem with the status it is listed under."""
    for status, answer in ANSWERS.items():
        for cls in answer.errors:
            assert cls.status == status, cls
            exc = cls("erp", "x") if issubclass(cls, source.SourceError) else cls("x")
            assert from_exception(exc, "r1").status == status, cls


def test_the_agent_module_names_only_listed_errors() -> None:
    """No error class in `agent.errors` is left out of the table."""
    classes = [
        value for value in vars(agent_errors).values()
        if isinstance(value, type) and issubclass(value, common_errors.ApiError)
    ]  # fmt: skip
    listed = {cls for answer in ANSWERS.values() for cls in answer.errors}
    assert set(classes) <= listed | {common_errors.ApiError}
