"""The per-principal token-bucket rate limiter, driven by a fake monotonic clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgehead.agent.api.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_then_limit(clock: FakeClock) -> None:
    """A fresh caller may make `burst` requests at once; the next one must wait."""
    limiter = RateLimiter(rate_per_second=2.0, burst=5, clock=clock)
    assert [limiter.check("crm") for _ in range(5)] == [None] * 5
    assert limiter.check("crm") == pytest.approx(0.5)


def test_refill_over_time(clock: FakeClock) -> None:
    """Tokens come back at `rate_per_second`: after 1 s at 2/s, two more requests pass."""
    limiter = RateLimiter(rate_per_second=2.0, burst=3, clock=clock)
    for _ in range(3):
        assert limiter.check("crm") is None
    assert limiter.check("crm") is not None
    clock.now += 1.0
    assert limiter.check("crm") is None
    assert limiter.check("crm") is None
    assert limiter.check("crm") is not None


def test_refill_never_exceeds_burst(clock: FakeClock) -> None:
    """A long pause refills the bucket to `burst`, not beyond."""
    limiter = RateLimiter(rate_per_second=10.0, burst=2, clock=clock)
    limiter.check("crm")
    clock.now += 3600.0
    assert [limiter.check("crm") for _ in range(3)] == [None, None, pytest.approx(0.1)]


def test_principals_are_independent(clock: FakeClock) -> None:
    """One caller using up its bucket does not limit another."""
    limiter = RateLimiter(rate_per_second=1.0, burst=2, clock=clock)
    assert limiter.check("crm") is None
    assert limiter.check("crm") is None
    assert limiter.check("crm") is not None
    assert limiter.check("portal") is None
    assert limiter.check("portal") is None


def test_retry_after_is_the_time_until_the_next_token(clock: FakeClock) -> None:
    """The wait returned is when one token will be back, and waiting that long suffices."""
    limiter = RateLimiter(rate_per_second=0.25, burst=1, clock=clock)
    assert limiter.check("crm") is None
    clock.now += 1.0
    wait = limiter.check("crm")
    assert wait == pytest.approx(3.0)
    assert wait is not None
    clock.now += wait - 0.01
    assert limiter.check("crm") == pytest.approx(0.01)
    clock.now += 0.01
    assert limiter.check("crm") is None


def test_denied_requests_take_no_tokens(clock: FakeClock) -> None:
    """Hammering while limited does not push the next allowed request further away."""
    limiter = RateLimiter(rate_per_second=1.0, burst=1, clock=clock)
    assert limiter.check("crm") is None
    for _ in range(100):
        assert limiter.check("crm") is not None
    clock.now += 1.0
    assert limiter.check("crm") is None


def test_full_buckets_are_evicted_so_memory_stays_bounded(clock: FakeClock) -> None:
    """With callers arriving steadily, only those seen within burst/rate seconds are held."""
    limiter = RateLimiter(rate_per_second=1.0, burst=5, clock=clock)
    for i in range(10_000):
        clock.now += 0.01
        limiter.check(f"caller-{i}")
        assert len(limiter) <= 501  # 5 s of callers at 100 per second
    clock.now += 5.0
    limiter.check("late")
    assert len(limiter) == 1


def test_eviction_forgets_nothing_that_matters(clock: FakeClock) -> None:
    """A caller evicted after going idle gets exactly the full burst a kept bucket would have."""
    limiter = RateLimiter(rate_per_second=1.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("crm")
    clock.now += 2.9
    limiter.check("other")
    assert len(limiter) == 2  # crm has 2.9 tokens: not full, kept
    clock.now += 0.1
    assert [limiter.check("crm") for _ in range(4)] == [None, None, None, pytest.approx(1.0)]


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.inf, 1), (1.0, 0)])
def test_nonsense_settings_are_refused(rate: float, burst: int) -> None:
    """A rate that is not a positive finite number, or a burst under 1, is a ValueError."""
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(rate, burst)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    burst=st.integers(min_value=1, max_value=6),
    calls=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.1, 0.333, 1.0, 2.5, 30.0]),
            st.sampled_from(["a", "b", "c"]),
        ),
        max_size=200,
    ),
)
def test_allowed_requests_in_any_window_stay_within_burst_plus_rate(
    rate: float, burst: int, calls: list[tuple[float, str]]
) -> None:
    """For every caller and window [t1, t2], allowed requests <= burst + rate * (t2 - t1)."""
    clock = FakeClock()
    limiter = RateLimiter(rate, burst, clock=clock)
    allowed: dict[str, list[float]] = {}
    for advance, name in calls:
        clock.now += advance
        if limiter.check(name) is None:
            allowed.setdefault(name, []).append(clock.now)
    for times in allowed.values():
        # The tightest windows start and end at allowed requests.
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= burst + rate * (times[j] - start) + 1e-9
