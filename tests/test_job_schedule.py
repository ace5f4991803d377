"""Job schedules: cron in a zone across daylight-saving changes, every:, catch-up, timetable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgehead.agent.schedule import Schedule, Timetable, missed

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `start`, each found from the previous one."""
    out: list[datetime] = []
    moment = start
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(moment)
    return out


def cron(expression: str, zone: str | None) -> Schedule:
    """A parsed cron schedule."""
    return Schedule.parse(expression, None, zone)


# --- cron across daylight-saving changes ------------------------------------------------------


def test_daily_london_spring_forward() -> None:
    """Daily 03:00 in London is 03:00 UTC before the 30 March 2025 change and 02:00 UTC after."""
    got = fires(cron("0 3 * * *", LONDON), utc(2025, 3, 28), 4)
    assert got == [
        utc(2025, 3, 28, 3),
        utc(2025, 3, 29, 3),
        utc(2025, 3, 30, 2),
        utc(2025, 3, 31, 2),
    ]


def test_daily_london_fall_back() -> None:
    """Daily 03:00 in London is 02:00 UTC before the 26 October 2025 change and 03:00 UTC after."""
    got = fires(cron("0 3 * * *", LONDON), utc(2025, 10, 24), 4)
    assert got == [
        utc(2025, 10, 24, 2),
        utc(2025, 10, 25, 2),
        utc(2025, 10, 26, 3),
        utc(2025, 10, 27, 3),
    ]


def test_daily_new_york_spring_forward() -> None:
    """Daily 03:00 in New York is 08:00 UTC (EST) before 9 March 2025 and 07:00 UTC (EDT) on it."""
    got = fires(cron("0 3 * * *", NEW_YORK), utc(2025, 3, 7, 12), 4)
    assert got == [utc(2025, 3, 8, 8), utc(2025, 3, 9, 7), utc(2025, 3, 10, 7), utc(2025, 3, 11, 7)]


def test_daily_new_york_fall_back() -> None:
    """Daily 03:00 in New York is 07:00 UTC (EDT) before 2 November 2025 and 08:00 UTC on it."""
    got = fires(cron("0 3 * * *", NEW_YORK), utc(2025, 10, 31, 12), 4)
    assert got == [
        utc(2025, 11, 1, 7),
        utc(2025, 11, 2, 8),
        utc(2025, 11, 3, 8),
        utc(2025, 11, 4, 8),
    ]


def test_skipped_wall_time_new_york_fires_once_after_the_gap() -> None:
    """02:30 does not exist in New York on 9 March 2025: it fires once at 03:00 EDT (07:00 UTC)."""
    got = fires(cron("30 2 * * *", NEW_YORK), utc(2025, 3, 8, 12), 3)
    assert got == [utc(2025, 3, 9, 7), utc(2025, 3, 10, 6, 30), utc(2025, 3, 11, 6, 30)]
    assert got[0].astimezone(ZoneInfo(NEW_YORK)).hour == 3


def test_skipped_wall_time_london_fires_once_after_the_gap() -> None:
    """London's gap on 30 March 2025 is 01:00-02:00: 01:30 fires once at 02:00 BST (01:00 UTC)."""
    got = fires(cron("30 1 * * *", LONDON), utc(2025, 3, 29, 12), 3)
    assert got == [utc(2025, 3, 30, 1), utc(2025, 3, 31, 0, 30), utc(2025, 4, 1, 0, 30)]


def test_london_0230_on_the_spring_forward_night_is_an_ordinary_time() -> None:
    """In London 02:30 exists on 30 March 2025 (it is 02:30 BST, 01:30 UTC) and fires there."""
    assert cron("30 2 * * *", LONDON).next_after(utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1, 30)


def test_repeated_wall_time_london_fires_once_at_first_occurrence() -> None:
    """01:30 happens twice in London on 26 October 2025: it fires once, at 01:30 BST (00:30 UTC)."""
    schedule = cron("30 1 * * *", LONDON)
    got = fires(schedule, utc(2025, 10, 25, 12), 3)
    assert got == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30), utc(2025, 10, 28, 1, 30)]
    # From inside the repeated hour, the second 01:30 (GMT) is not a fire time.
    assert schedule.next_after(utc(2025, 10, 26, 1, 10)) == utc(2025, 10, 27, 1, 30)


def test_repeated_wall_time_new_york_fires_once_at_first_occurrence() -> None:
    """01:30 happens twice in New York on 2 November 2025: it fires at 01:30 EDT (05:30 UTC)."""
    got = fires(cron("30 1 * * *", NEW_YORK), utc(2025, 11, 1, 12), 2)
    assert got == [utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)]


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        (LONDON, utc(2025, 10, 25, 22), utc(2025, 10, 26, 4)),
        (NEW_YORK, utc(2025, 11, 2, 3), utc(2025, 11, 2, 9)),
    ],
)
def test_every_quarter_hour_across_fall_back(zone: str, start: datetime, end: datetime) -> None:
    """*/15 through the repeated hour fires at each UTC quarter hour exactly once, 15 min apart."""
    schedule = cron("*/15 * * * *", zone)
    got: list[datetime] = []
    moment = start
    while (moment := schedule.next_after(moment)) <= end:
        got.append(moment)
    expected = [start + timedelta(minutes=15 * step) for step in range(1, 25)]
    assert got == expected
    assert len(set(got)) == len(got)


def test_every_quarter_hour_across_spring_forward() -> None:
    """*/15 through New York's spring gap stays 15 minutes apart in UTC, with no duplicate."""
    got = fires(cron("*/15 * * * *", NEW_YORK), utc(2025, 3, 9, 6, 15), 5)
    assert got == [utc(2025, 3, 9, 6, 15) + timedelta(minutes=15 * step) for step in range(1, 6)]


def test_next_after_takes_any_zone_and_answers_in_utc() -> None:
    """The moment may be in any zone; the fire time is the same instant, in UTC."""
    schedule = cron("0 3 * * *", LONDON)
    moment = datetime(2025, 6, 1, 12, tzinfo=ZoneInfo(NEW_YORK))
    got = schedule.next_after(moment)
    assert got == utc(2025, 6, 2, 2)
    assert got.tzinfo is UTC


def test_next_after_is_strictly_after_a_fire_time() -> None:
    """A moment that is itself a fire time gives the following one."""
    assert cron("0 3 * * *", LONDON).next_after(utc(2025, 6, 2, 2)) == utc(2025, 6, 3, 2)


def test_naive_moment_is_refused() -> None:
    """A moment without a time zone is a ValueError, not a guess."""
    with pytest.raises(ValueError, match="needs a time zone"):
        cron("0 3 * * *", LONDON).next_after(datetime(2025, 6, 1))


@pytest.fixture
def london_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone set to Europe/London for the test."""
    if not hasattr(time, "tzset"):
        pytest.skip("the local zone cannot be changed on this platform")
    monkeypatch.setenv("TZ", LONDON)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("london_machine")
def test_no_zone_reads_cron_in_the_machine_zone() -> None:
    """Without a zone the machine's own rules apply, daylight-saving changes included."""
    schedule = cron("30 1 * * *", None)
    assert schedule.zone is None
    assert fires(schedule, utc(2025, 3, 29, 12), 2) == [
        utc(2025, 3, 30, 1),
        utc(2025, 3, 31, 0, 30),
    ]
    assert fires(schedule, utc(2025, 10, 25, 12), 2) == [
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 27, 1, 30),
    ]


# --- every ------------------------------------------------------------------------------------


def test_every_fifteen_minutes_is_anchor_free() -> None:
    """every: 15m fires 15 elapsed minutes after the moment given, whatever its minute.

    The start is 01:07:30 BST on the fall-back night, so the fires run on through the
    repeated hour in real time (00:22:30, 00:37:30, 00:52:30 UTC).
    """
    schedule = Schedule.parse(None, timedelta(minutes=15), None)
    start = datetime(2025, 10, 26, 1, 7, 30, tzinfo=ZoneInfo(LONDON))
    got = fires(schedule, start, 3)
    assert got == [datetime(2025, 10, 26, 0, 7 + 15 * step, 30, tzinfo=UTC) for step in (1, 2, 3)]
    assert all(moment.tzinfo is UTC for moment in got)


# --- parse errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", r"bad minute field '61'"),
        ("0 24 * * *", r"bad hour field '24'"),
        ("0 0 32 * *", r"bad day of month field '32'"),
        ("0 0 * 13 *", r"bad month field '13'"),
        ("0 0 * * 8", r"bad day of week field '8'"),
        ("0 0 * * funday", r"bad day of week field 'funday'"),
        ("0 0 * *", r"has 4 fields: give 5"),
        ("0 0 0 * * * *", r"has 7 fields: give 5"),
        ("@daily", r"has 1 fields: give 5"),
        ("0 0 30 2 *", r"never fires"),
    ],
)
def test_parse_names_the_bad_cron_field(expression: str, message: str) -> None:
    """A bad cron expression is a ValueError naming what to fix."""
    with pytest.raises(ValueError, match=message):
        Schedule.parse(expression, None, None)


def test_parse_refuses_both_cron_and_every() -> None:
    """cron and every together are refused."""
    with pytest.raises(ValueError, match="either cron or every for a job, not both"):
        Schedule.parse("0 3 * * *", timedelta(minutes=5), None)


def test_parse_refuses_neither_cron_nor_every() -> None:
    """A schedule without cron or every is refused."""
    with pytest.raises(ValueError, match=r"Set cron \(e\.g\. '30 2 \* \* \*'\) or every"):
        Schedule.parse(None, None, None)


@pytest.mark.parametrize("every", [timedelta(0), timedelta(seconds=-5)])
def test_parse_refuses_every_not_positive(every: timedelta) -> None:
    """every of zero or less is refused."""
    with pytest.raises(ValueError, match="every must be a positive interval"):
        Schedule.parse(None, every, None)


def test_parse_refuses_every_under_a_second() -> None:
    """every under one second is refused."""
    with pytest.raises(ValueError, match="every must be at least 1 second"):
        Schedule.parse(None, timedelta(milliseconds=500), None)


@pytest.mark.parametrize("name", ["Europe/Londn", "../etc/passwd", ""])
def test_parse_refuses_unknown_time_zone(name: str) -> None:
    """An unknown time zone name is refused with an example of a good one."""
    with pytest.raises(ValueError, match=r"Unknown time zone .*such as 'Europe/London'"):
        Schedule.parse("0 3 * * *", None, name)


def test_parse_keeps_zone_and_normalises_spacing() -> None:
    """A good schedule keeps its zone; the cron fields are joined by single spaces."""
    schedule = Schedule.parse("  30  2 * *   * ", None, NEW_YORK)
    assert schedule == Schedule("30 2 * * *", None, ZoneInfo(NEW_YORK))


def test_schedule_needs_exactly_one_kind() -> None:
    """Constructing a schedule directly with both or neither kind is refused too."""
    with pytest.raises(ValueError, match="exactly one of cron and every"):
        Schedule(None, None, None)


# --- missed -----------------------------------------------------------------------------------


def test_missed_none_when_nothing_was_missed() -> None:
    """A job that ran at its last fire time and is not yet due again missed nothing."""
    schedule = cron("0 3 * * *", LONDON)
    assert missed(schedule, utc(2025, 6, 2, 2), utc(2025, 6, 2, 20)) is None


def test_missed_one() -> None:
    """One fire time passed while down is the one to catch up on."""
    schedule = cron("0 3 * * *", LONDON)
    assert missed(schedule, utc(2025, 6, 2, 2), utc(2025, 6, 3, 9)) == utc(2025, 6, 3, 2)


def test_missed_exactly_at_now_counts() -> None:
    """A fire time equal to now is in (last_planned, now]."""
    schedule = cron("0 3 * * *", LONDON)
    assert missed(schedule, utc(2025, 6, 2, 2), utc(2025, 6, 3, 2)) == utc(2025, 6, 3, 2)


def test_missed_several_collapse_to_the_latest() -> None:
    """Many missed fire times (across a daylight-saving change) collapse into the latest one."""
    schedule = cron("0 3 * * *", LONDON)
    assert missed(schedule, utc(2025, 3, 20, 3), utc(2025, 4, 10, 12)) == utc(2025, 4, 10, 2)
    quarter = cron("*/15 * * * *", NEW_YORK)
    assert missed(quarter, utc(2025, 1, 1), utc(2025, 11, 2, 6, 7)) == utc(2025, 11, 2, 6)


def test_missed_every_collapses_on_its_own_chain() -> None:
    """For every:, missed fire times are last_planned plus whole intervals; the latest wins."""
    schedule = Schedule.parse(None, timedelta(minutes=15), None)
    last = utc(2025, 6, 1, 10, 7)
    assert missed(schedule, last, utc(2025, 6, 1, 10, 20)) is None
    assert missed(schedule, last, utc(2025, 6, 1, 10, 22)) == utc(2025, 6, 1, 10, 22)
    assert missed(schedule, last, utc(2025, 6, 1, 12, 0)) == utc(2025, 6, 1, 11, 52)


def test_missed_never_ran() -> None:
    """A job that never ran has missed nothing."""
    assert missed(cron("0 3 * * *", LONDON), None, utc(2025, 6, 3, 9)) is None


# --- timetable --------------------------------------------------------------------------------


def test_timetable_catch_up_makes_a_missed_job_due_now() -> None:
    """With catch_up and a missed fire time the job is due at once; due() hands it over."""
    table = Timetable()
    now = utc(2025, 6, 3, 9)
    assert table.plan("export", cron("0 3 * * *", LONDON), now, utc(2025, 6, 2, 2), True) == now
    assert table.next_wake() == now
    assert table.due(now) == [("export", now)]
    assert table.next_of("export") == utc(2025, 6, 4, 2)


def test_timetable_without_catch_up_waits_for_the_next_fire() -> None:
    """Without catch_up a missed fire time is skipped: the job is due at the next one."""
    table = Timetable()
    now = utc(2025, 6, 3, 9)
    due = table.plan("export", cron("0 3 * * *", LONDON), now, utc(2025, 6, 2, 2), False)
    assert due == utc(2025, 6, 4, 2)
    assert table.due(now) == []


def test_timetable_catch_up_with_nothing_missed_waits() -> None:
    """catch_up for a job that never ran, or missed nothing, waits for the next fire time."""
    table = Timetable()
    now = utc(2025, 6, 3, 9)
    schedule = cron("0 3 * * *", LONDON)
    assert table.plan("a", schedule, now, None, True) == utc(2025, 6, 4, 2)
    assert table.plan("b", schedule, now, utc(2025, 6, 3, 2), True) == utc(2025, 6, 4, 2)


def test_timetable_late_wake_skips_the_backlog() -> None:
    """A runner waking hours late gets the job once, then it is due after now, not in the past."""
    table = Timetable()
    schedule = Schedule.parse(None, timedelta(minutes=15), None)
    table.plan("import", schedule, utc(2025, 6, 1, 10), None, False)
    late = utc(2025, 6, 1, 13, 2)
    assert table.due(late) == [("import", utc(2025, 6, 1, 10, 15))]
    assert table.next_of("import") == utc(2025, 6, 1, 13, 17)
    assert table.due(late) == []


def test_timetable_on_time_wake_keeps_the_chain() -> None:
    """A runner waking on time re-plans from the planned time, so lateness does not drift."""
    table = Timetable()
    schedule = Schedule.parse(None, timedelta(minutes=15), None)
    table.plan("import", schedule, utc(2025, 6, 1, 10), None, False)
    assert table.due(utc(2025, 6, 1, 10, 15, 3)) == [("import", utc(2025, 6, 1, 10, 15))]
    assert table.next_of("import") == utc(2025, 6, 1, 10, 30)


def test_timetable_orders_two_jobs_and_wakes_for_the_earliest() -> None:
    """Two due jobs come earliest first; next_wake is the earliest due time of all."""
    table = Timetable()
    now = utc(2025, 6, 1, 0)
    table.plan("late", cron("0 3 * * *", LONDON), now, None, False)  # 02:00 UTC
    table.plan("early", cron("30 1 * * *", LONDON), now, None, False)  # 00:30 UTC
    assert table.next_wake() == utc(2025, 6, 1, 0, 30)
    assert table.due(utc(2025, 6, 1, 0, 29)) == []
    assert table.due(utc(2025, 6, 1, 2, 5)) == [
        ("early", utc(2025, 6, 1, 0, 30)),
        ("late", utc(2025, 6, 1, 2)),
    ]
    assert table.next_wake() == utc(2025, 6, 2, 0, 30)
    assert table.next_of("late") == utc(2025, 6, 2, 2)


def test_timetable_empty_and_unknown() -> None:
    """An empty timetable has no wake time; an unplanned job has no next time."""
    table = Timetable()
    assert table.next_wake() is None
    assert table.next_of("nope") is None
    assert table.due(utc(2025, 6, 1)) == []


# --- properties -------------------------------------------------------------------------------

EXPRESSIONS = [
    "0 3 * * *",
    "30 1 * * *",
    "30 2 * * *",
    "*/15 * * * *",
    "5 */2 * * 1-5",
    "0 0 1 * *",
]


@settings(max_examples=300, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from([LONDON, NEW_YORK]),
    first=st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    gap=st.timedeltas(timedelta(0), timedelta(days=3)),
)
def test_next_after_is_after_and_monotonic(
    expression: str, zone: str, first: datetime, gap: timedelta
) -> None:
    """next_after(t) > t, and t1 <= t2 implies next_after(t1) <= next_after(t2)."""
    schedule = cron(expression, zone)
    second = first + gap
    one, two = schedule.next_after(first), schedule.next_after(second)
    assert one > first
    assert two > second
    assert one <= two


@settings(max_examples=100, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    zone=st.sampled_from([LONDON, NEW_YORK]),
    last=st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    down=st.timedeltas(timedelta(0), timedelta(days=40)),
)
def test_missed_is_the_last_fire_up_to_now(
    expression: str, zone: str, last: datetime, down: timedelta
) -> None:
    """missed() is a fire time in (last, now] with no fire time after it up to now."""
    schedule = cron(expression, zone)
    now = last + down
    got = missed(schedule, last, now)
    if got is None:
        assert schedule.next_after(last) > now
    else:
        assert last < got <= now
        assert schedule.next_after(got) > now
        assert schedule.next_after(got - timedelta(seconds=1)) == got  # a fire time itself
