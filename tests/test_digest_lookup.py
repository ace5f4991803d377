# common.auth.find_by_digest: the one constant-time lookup of a token's digest that the
# agent's API keys, the relay's callers and the relay's admin port all use.
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from bridgehead.common import auth


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


ENTRIES = [(digest("a"), "first"), (digest("b"), "second"), (digest("c"), "third")]


@pytest.mark.parametrize(("token", "found"), [("a", "first"), ("c", "third"), ("zz", None)])
def test_the_entry_with_the_digest_is_found(token: str, found: str | None) -> None:
    """The value whose digest equals the given one is returned; an unknown digest is None."""
    assert auth.find_by_digest(digest(token), ENTRIES) == found


def test_the_first_of_two_equal_digests_wins() -> None:
    """Two entries with one digest (a config mistake): the first one's value is returned."""
    entries = [(digest("a"), "one"), (digest("a"), "two")]
    assert auth.find_by_digest(digest("a"), entries) == "one"


def test_every_entry_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """A match on the first entry does not stop the loop: each entry is compared once with
    hmac.compare_digest, so the time taken does not depend on where (or whether) it matched."""
    compared: list[bytes] = []
    original = hmac.compare_digest

    def counting(given: Any, expected: Any) -> bool:
        compared.append(expected)
        return original(given, expected)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert auth.find_by_digest(digest("a"), iter(ENTRIES)) == "first"
    assert compared == [d for d, _ in ENTRIES]
