# The health page's sessions and CSRF tokens, with the clock moved by hand: no sockets.
from __future__ import annotations

from bridgehead.agent.admin.sessions import Sessions, cookie_name, csrf_matches


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_for_its_lifetime_then_is_forgotten() -> None:
    """A session is found by its id until its lifetime is over, then never again."""
    clock = Clock()
    sessions = Sessions(lifetime=60, clock=clock)
    session = sessions.open()
    clock.now += 59
    assert sessions.get(session.id) == session
    clock.now += 1
    assert sessions.get(session.id) is None
    assert len(sessions) == 0


def test_sessions_are_bounded_and_can_be_closed() -> None:
    """Beyond the limit the oldest session is forgotten; a closed one is gone; an unknown
    or empty id finds nothing."""
    sessions = Sessions(limit=2, clock=Clock())
    first, second, third = sessions.open(), sessions.open(), sessions.open()
    assert sessions.get(first.id) is None
    assert sessions.get(second.id) == second
    sessions.close(third.id)
    assert sessions.get(third.id) is None
    assert sessions.get("") is None
    assert sessions.get("made-up") is None


def test_the_csrf_token_is_the_sessions_own() -> None:
    """Only the session's own CSRF token matches: not another session's, not an empty one,
    never without a session; ids and tokens are long random strings."""
    sessions = Sessions(clock=Clock())
    one, other = sessions.open(), sessions.open()
    assert csrf_matches(one, one.csrf)
    assert not csrf_matches(one, other.csrf)
    assert not csrf_matches(one, "")
    assert not csrf_matches(one, None)
    assert not csrf_matches(None, one.csrf)
    assert len(one.id) >= 43
    assert len({one.id, one.csrf, other.id, other.csrf}) == 4


def test_the_cookie_name_carries_the_port() -> None:
    """Two agents on one host (cookies ignore ports) keep cookies of their own."""
    assert cookie_name(8471) != cookie_name(8472)
    assert cookie_name(None) == "bridgehead_admin"
