"""Six-field cron (seconds first), as CNPG's ScheduledBackup reads it (robfig/cron with seconds).

Pure: validate an expression with an actionable message, and compute its next runs (UTC), so a
schedule can be checked and explained before it is written, and the simulator can play it.
Fields: second minute hour day-of-month month day-of-week; `*`, `?` (day fields), lists `a,b`,
ranges `a-b`, steps `*/n` and `a-b/n` and `a/n`, month names JAN-DEC and weekday names SUN-SAT.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
          ("day-of-week", 0, 6))
_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])},
    "day-of-week": {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}
MAX_SEARCH_DAYS = 366 * 5


class CronError(ValueError):
    """The expression is not a valid six-field cron; the message says which field and why."""


@dataclass(frozen=True)
class CronSchedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day-of-month is * or ?
    any_weekday: bool

    def day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        # robfig: both restricted → either matches; otherwise both must (a * matches everything)
        if not self.any_day and not self.any_weekday:
            return dom or dow
        return dom and dow

    def next_runs(self, after: datetime, count: int = 3) -> list[datetime]:
        """The next `count` run times strictly after `after` (UTC)."""
        return [run for run, _ in zip(self._runs(after), range(count), strict=False)]

    def _runs(self, after: datetime) -> Iterator[datetime]:
        after = after.astimezone(UTC).replace(microsecond=0)
        day = after.replace(hour=0, minute=0, second=0)
        for _ in range(MAX_SEARCH_DAYS):
            if self.day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        for second in sorted(self.seconds):
                            run = day.replace(hour=hour, minute=minute, second=second)
                            if run > after:
                                yield run
            day += timedelta(days=1)


def _value(text: str, name: str, low: int, high: int) -> int:
    upper = text.upper()
    if upper in _NAMES.get(name, {}):
        return _NAMES[name][upper]
    if not text.isdigit():
        raise CronError(f"{name} field: {text!r} is not a number" + (
            f" or a name ({', '.join(_NAMES[name])})" if name in _NAMES else ""))
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} field: {value} is outside {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            if base == "?" and name not in ("day-of-month", "day-of-week"):
                raise CronError(f"{name} field: '?' is allowed only in the day fields")
            start, end = low, high
            star = star or step == 1
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, name, low, high), _value(last, name, low, high)
            if start > end:
                raise CronError(f"{name} field: range {base} goes backwards")
        else:
            start = _value(base, name, low, high)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse(expression: str) -> CronSchedule:
    """Parse a six-field cron expression (seconds first); CronError says what is wrong."""
    parts = expression.split()
    if len(parts) != len(FIELDS):
        hint = " (add a seconds field first: '0 ' + your five-field expression)" if len(parts) == 5 else ""
        raise CronError(f"a schedule has six fields, seconds first (e.g. '0 0 2 * * *' = 02:00 daily); "
                        f"got {len(parts)}{hint}")
    parsed = [_field(text, name, low, high) for text, (name, low, high) in zip(parts, FIELDS, strict=True)]
    return CronSchedule(seconds=parsed[0][0], minutes=parsed[1][0], hours=parsed[2][0], days=parsed[3][0],
                        months=parsed[4][0], weekdays=parsed[5][0], any_day=parsed[3][1], any_weekday=parsed[5][1])
