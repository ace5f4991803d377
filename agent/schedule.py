"""When a scheduled job fires: a cron expression read in a time zone, or a fixed interval.

Sans-IO: no clock, no sleeping, no files; every moment is passed in as an aware datetime and
every fire time comes back as an aware UTC datetime. The rules:

- `every:` fires are anchor-free: the next one is the previous planned time plus the interval.
- Cron fields are wall-clock times in the schedule's zone (the machine's own when it has none).
  croniter walks the wall clock; this module maps each wall time to its instants, following
  the daylight-saving rules of ISC cron:
  - a job at fixed times (neither its minute nor its hour field starts with `*`) whose wall
    time is skipped by spring-forward fires once, at the first instant after the gap; a wall
    time repeated by fall-back fires once, at its first occurrence;
  - a job whose minute or hour field starts with `*` runs by elapsed time: skipped wall times
    do not fire, and repeated ones fire at both occurrences, so `*/15 * * * *` stays 15
    minutes apart through either change.
- `missed` says which one fire time a job that was down should catch up on (the latest);
  `Timetable` says which jobs are due and never runs a backlog.
- Overlapping runs are the runner's to refuse, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_SECOND = timedelta(seconds=1)
_LOOK_AHEAD = 26
"""Hours after a moment sampled for a backward offset change (fall-back) still to come."""


@dataclass(frozen=True)
class Schedule:
    """When a job fires: exactly one of a 5-field `cron` (read in `zone`) or an `every` interval."""

    cron: str | None
    every: timedelta | None
    zone: ZoneInfo | None
    """The zone the cron fields are read in; None is the machine's local zone."""

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ValueError("A schedule needs exactly one of cron and every.")

    @classmethod
    def parse(cls, cron: str | None, every: timedelta | None, time_zone: str | None) -> Schedule:
        """A checked schedule; a ValueError says in one sentence how to fix what is wrong."""
        if cron is not None and every is not None:
            raise ValueError("Set either cron or every for a job, not both.")
        if cron is None and every is None:
            raise ValueError("Set cron (e.g. '30 2 * * *') or every (e.g. 15m) for a job.")
        zone = _zone(time_zone)
        if every is not None:
            if every <= timedelta(0):
                raise ValueError(f"every must be a positive interval, not {every}.")
            if every < _SECOND:
                raise ValueError(f"every must be at least 1 second, not {every}.")
            return cls(cron=None, every=every, zone=zone)
        assert cron is not None
        return cls(cron=_checked_cron(cron), every=None, zone=zone)

    @property
    def _by_elapsed_time(self) -> bool:
        """Whether the cron job runs by elapsed time across daylight-saving changes."""
        assert self.cron is not None
        minute, hour = self.cron.split()[:2]
        return minute.startswith("*") or hour.startswith("*")

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware, any zone), as an aware UTC time."""
        moment = _utc(moment)
        if self.every is not None:
            return moment + self.every
        assert self.cron is not None
        both_folds = self._by_elapsed_time
        clock = _Clock(self.zone)
        # A wall time before the moment's own can still fire after it, at its second
        # occurrence, when the clocks go back soon after the moment.
        back = max(
            (clock.offset(moment) - clock.offset(moment + timedelta(hours=hour)))
            for hour in range(_LOOK_AHEAD + 1)
        )
        walls = croniter(self.cron, clock.wall(moment) - back - _SECOND, day_or=True)
        best: datetime | None = None
        while True:
            wall: datetime = walls.get_next(datetime)
            for instant in clock.instants(wall, both_folds=both_folds):
                if instant > moment and (best is None or instant < best):
                    best = instant
            # Later wall times map no earlier than this one's earliest instant.
            if best is not None and clock.earliest(wall) >= best:
                return best


def missed(schedule: Schedule, last_planned: datetime | None, now: datetime) -> datetime | None:
    """The latest fire time in (last_planned, now], or None; None when the job never ran.

    `last_planned` is the planned time of the last run that started. Several missed fire
    times collapse into the latest one.
    """
    if last_planned is None:
        return None
    low, now = _utc(last_planned), _utc(now)
    if schedule.every is not None:
        steps = (now - low) // schedule.every
        return low + steps * schedule.every if steps >= 1 else None
    if schedule.next_after(low) > now:
        return None
    # next_after is monotonic: search for the last moment whose next fire is still <= now.
    high = now
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if schedule.next_after(middle) <= now:
            low = middle
        else:
            high = middle
    return schedule.next_after(low)


@dataclass
class _Entry:
    schedule: Schedule
    due: datetime


class Timetable:
    """Which job is due next, for the runner: a pure state machine over planned times."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def plan(
        self,
        name: str,
        schedule: Schedule,
        now: datetime,
        last_planned: datetime | None,
        catch_up: bool,
    ) -> datetime:
        """Register (or replace) a job at start and return its due time.

        With `catch_up` and a fire time missed since `last_planned` it is due `now`;
        otherwise at the first fire time after `now`.
        """
        now = _utc(now)
        if catch_up and missed(schedule, last_planned, now) is not None:
            due = now
        else:
            due = schedule.next_after(now)
        self._entries[name] = _Entry(schedule, due)
        return due

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """The jobs due by `now` as (name, planned time), earliest first, each then re-planned.

        A job is re-planned to its next fire time after the planned one when that is still
        ahead of `now`, else to the next after `now`: a runner that woke late skips the
        backlog instead of running it.
        """
        now = _utc(now)
        ready = sorted(
            ((name, entry.due) for name, entry in self._entries.items() if entry.due <= now),
            key=lambda item: (item[1], item[0]),
        )
        for name, planned in ready:
            entry = self._entries[name]
            following = entry.schedule.next_after(planned)
            entry.due = following if following > now else entry.schedule.next_after(now)
        return ready

    def next_wake(self) -> datetime | None:
        """The earliest due time of all jobs, or None when none is planned."""
        return min((entry.due for entry in self._entries.values()), default=None)

    def next_of(self, name: str) -> datetime | None:
        """The job's next due time, or None for a job not planned."""
        entry = self._entries.get(name)
        return None if entry is None else entry.due


class _Clock:
    """The wall clock of a zone (None: the machine's local one), to and from UTC instants."""

    def __init__(self, zone: ZoneInfo | None) -> None:
        self._zone = zone

    def wall(self, instant: datetime) -> datetime:
        """The naive wall time at `instant`."""
        local = instant.astimezone(self._zone) if self._zone else instant.astimezone()
        return local.replace(tzinfo=None, fold=0)

    def offset(self, instant: datetime) -> timedelta:
        """The zone's offset from UTC at `instant`."""
        return self.wall(instant) - instant.replace(tzinfo=None)

    def _reading(self, wall: datetime, fold: int) -> datetime:
        """`wall` read with `fold` (PEP 495) as a UTC instant; in a gap it is not `wall`."""
        folded = wall.replace(fold=fold)
        if self._zone is not None:
            folded = folded.replace(tzinfo=self._zone)
        return folded.astimezone(UTC)

    def instants(self, wall: datetime, *, both_folds: bool) -> Iterator[datetime]:
        """The instants `wall` fires at: both occurrences if asked, a gap's end if skipped."""
        first, second = self._reading(wall, 0), self._reading(wall, 1)
        exists = [t for t in sorted({first, second}) if self.wall(t) == wall]
        if exists:
            yield from exists if both_folds else exists[:1]
        elif not both_folds:
            yield self._gap_end(wall, min(first, second), max(first, second))

    def earliest(self, wall: datetime) -> datetime:
        """The earliest instant any reading of `wall` maps to (a lower bound for later walls)."""
        first, second = self._reading(wall, 0), self._reading(wall, 1)
        exists = [t for t in (first, second) if self.wall(t) == wall]
        if exists:
            return min(exists)
        return self._gap_end(wall, min(first, second), max(first, second))

    def _gap_end(self, wall: datetime, low: datetime, high: datetime) -> datetime:
        """The first instant whose wall time is past `wall`, which lies in (low, high]."""
        while high - low > _SECOND:
            middle = low + timedelta(seconds=(high - low) // _SECOND // 2)
            if self.wall(middle) > wall:
                high = middle
            else:
                low = middle
        return high


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown time zone {name!r}: use an IANA name such as 'Europe/London' "
            "or leave it out for the machine's own zone."
        ) from None


def _checked_cron(cron: str) -> str:
    """`cron` normalised to single spaces, or a ValueError naming the field that is wrong."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"Cron expression {cron!r} has {len(fields)} fields: give 5 "
            "(minute hour day-of-month month day-of-week), e.g. '30 2 * * *'."
        )
    for index, field in enumerate(fields):
        alone = ["*"] * 5
        alone[index] = field
        try:
            croniter(" ".join(alone))
        except CroniterError:
            raise ValueError(
                f"Cron expression {cron!r} has a bad {_FIELDS[index]} field {field!r}: "
                "fix it to a number, range, list or step within that field's range."
            ) from None
    normal = " ".join(fields)
    try:
        croniter(normal, datetime(2000, 1, 1), day_or=True).get_next(datetime)
    except CroniterError:
        raise ValueError(
            f"Cron expression {cron!r} never fires: choose a day of month that its months have."
        ) from None
    return normal


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"The moment {moment.isoformat()} needs a time zone.")
    return moment.astimezone(UTC)
