"""The webhook delivery plan (relay.webhooks.plan): ordered per key, bounded, and a position
that never passes an event not yet done. No sockets, no sleeping: time is passed in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridgehead.relay.webhooks.plan import Pending, Plan, Retry

RETRY = Retry(first=1.0, max=8.0, give_up_after=100.0)


def plan(parallel: int = 4, window: int = 100) -> Plan:
    return Plan(parallel=parallel, window=window, retry=RETRY, random=lambda: 1.0)


def event(seq: int, key: str) -> Pending:
    return Pending(seq, f"e-{seq}", key, {"data": seq})


def test_one_event_per_key_in_flight_and_the_oldest_first() -> None:
    """A key's second event waits for its first; other keys go meanwhile, oldest first,
    up to `parallel`."""
    p = plan(parallel=2)
    for seq, key in [(1, "a"), (2, "a"), (3, "b"), (4, "c")]:
        p.add(event(seq, key))
    first = p.take(0.0)
    assert [e.seq for e in first] == [1, 3]
    assert p.take(0.0) == []
    p.delivered(first[0])
    assert [e.seq for e in p.take(0.0)] == [2]
    assert p.committable() == 1


def test_a_failure_backs_off_exponentially_and_holds_only_its_key() -> None:
    p = plan()
    p.add(event(1, "a"))
    p.add(event(2, "a"))
    p.add(event(3, "b"))
    one, three = p.take(0.0)
    assert not p.failed(one, 0.0, "HTTP 500")
    p.delivered(three)
    assert p.take(0.5) == []
    assert p.next_due(0.5) == 0.5
    again = p.take(1.0)
    assert [e.seq for e in again] == [1]
    assert not p.failed(again[0], 1.0, "HTTP 500")
    assert p.take(2.9) == []
    assert [e.seq for e in p.take(3.0)] == [1]  # 1 s, then 2 s
    assert p.committable() == 0
    assert p.failures == 2
    assert p.last_error == "HTTP 500"


def test_retry_after_holds_every_key_back() -> None:
    """A 429's Retry-After pauses the whole subscription, not just the key."""
    p = plan()
    p.add(event(1, "a"))
    p.add(event(2, "b"))
    (one, two) = p.take(0.0)
    p.delivered(two)
    p.add(event(3, "c"))
    p.failed(one, 0.0, "HTTP 429", retry_after=5.0)
    assert p.take(4.9) == []
    assert sorted(e.seq for e in p.take(5.0)) == [1, 3]


def test_an_event_failing_past_retry_for_is_a_dead_letter_and_its_key_moves_on() -> None:
    p = plan()
    p.add(event(1, "a"))
    p.add(event(2, "a"))
    (one,) = p.take(0.0)
    assert not p.failed(one, 50.0, "HTTP 503")
    (one,) = p.take(60.0)
    assert p.failed(one, 100.0, "HTTP 503")
    assert [d.seq for d in p.dead] == [1]
    assert p.committable() == 1
    assert [e.seq for e in p.take(100.0)] == [2]
    p.recorded(p.dead)
    assert p.dead == []


def test_the_window_bounds_what_is_held_and_events_read_again_are_ignored() -> None:
    p = plan(window=2)
    p.add(event(1, "a"))
    p.add(event(2, "b"))
    assert not p.has_room
    p.add(event(2, "b"))
    assert p.undone == 2
    for e in p.take(0.0):
        p.delivered(e)
    assert p.has_room
    assert p.committable() == 2
    p.add(event(1, "a"))
    assert p.undone == 0


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from("abcde"), min_size=1, max_size=40),
    outcomes=st.lists(st.booleans(), min_size=1, max_size=200),
    parallel=st.integers(1, 4),
)
def test_delivery_order_per_key_and_the_position_hold_under_any_outcomes(
    keys: list[str], outcomes: list[bool], parallel: int
) -> None:
    """Whatever fails and when: each key's events are delivered in sequence order, and the
    committable position never passes an event that is not done."""
    p = Plan(parallel=parallel, window=1000, retry=Retry(1.0, 1.0, 1e9), random=lambda: 1.0)
    for seq, key in enumerate(keys, 1):
        p.add(event(seq, key))
    delivered: list[Pending] = []
    now, turn = 0.0, 0
    while len(delivered) < len(keys):
        batch = p.take(now)
        for item in batch:
            if outcomes[turn % len(outcomes)] or turn > 400:
                p.delivered(item)
                delivered.append(item)
            else:
                p.failed(item, now, "no")
            turn += 1
        position = p.committable()
        done = {d.seq for d in delivered}
        assert all(seq in done for seq in range(1, position + 1))
        now += 1.0
    for key in set(keys):
        seqs = [d.seq for d in delivered if d.key == key]
        assert seqs == sorted(seqs)
    assert p.committable() == len(keys)


def test_retry_after_is_held_to_retry_max_and_bytes_bound_the_window() -> None:
    """A receiver's Retry-After longer than retry_max waits retry_max; the events held are
    bounded by bytes as well as by count."""
    p = plan()
    p.max_bytes = 100
    p.add(Pending(1, "e-1", "a", {}, size=60))
    assert p.has_room
    p.add(Pending(2, "e-2", "b", {}, size=60))
    assert not p.has_room
    (one, two) = p.take(0.0)
    p.failed(one, 0.0, "HTTP 429", retry_after=86400.0)
    assert [e.seq for e in p.take(RETRY.max)] == [1]
    p.delivered(two)
    assert p.has_room


def test_a_dead_letter_past_the_committable_position_waits() -> None:
    """An event given up while an earlier one is still being retried is not handed over yet:
    after a reconnect it would be tried again, and must not stay listed as dead."""
    p = plan()
    p.add(event(1, "a"))
    p.add(event(2, "b"))
    one, two = p.take(0.0)
    p.failed(one, 0.0, "HTTP 500")
    assert p.failed(two, 1000.0, "HTTP 500")
    assert p.committable() == 0
    assert p.dead_upto(p.committable()) == []
    assert [d.seq for d in p.dead] == [2]
