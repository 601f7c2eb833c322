"""Cron expressions for schedules: what Chaos Mesh's Schedule accepts (robfig/cron v3 with
SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor), and the next fire times in a time zone.

Syntax: 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds field; `*`
and `?`, `a-b`, `*/n`, `a-b/n`, `a/n` (a through the field's maximum), lists `a,b-c`; JAN-DEC and
SUN-SAT in any case; weekdays 0-6 with 0 = Sunday, and 7 = Sunday too. Descriptors @yearly
@annually @monthly @weekly @daily @midnight @hourly, and `@every <Go duration>` (whole seconds, >= 1s).

Days: when both day fields are restricted (neither starts with `*` or `?`), a day matches when either
matches (Vixie cron); otherwise both must.

Daylight saving time, where a wall-clock time does not exist or exists twice:
- a wall time in a spring-forward gap fires once, at the first instant after the gap, unless the hour
  field covers every hour (then the schedule is about elapsed time and the gap's times are skipped:
  `0 * * * *` fires 23 times that day);
- a wall time in a repeated (fall-back) hour fires once, at its first occurrence, unless the hour field
  covers every hour (then it fires in both passes: `0 * * * *` fires 25 times that day).
This is what Vixie cron does for fixed-time and wildcard jobs.

Pure: no Django; the standard library and injector.faults.units (Go durations are parsed in one place).
"""
from __future__ import annotations

import bisect
import calendar
import functools
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from injector.faults.units import Duration, UnitError

__all__ = ["Cron", "CronError", "describe", "next_after", "next_times", "parse", "zone"]

SEARCH_YEARS = 400  # the Gregorian calendar repeats every 400 years: nothing within them means never
MAX_EVERY_NANOSECONDS = 2**63 - 1  # Go's longest time.Duration

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")
WEEKDAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = {name[:3].lower(): number for number, name in enumerate(MONTH_NAMES, start=1)}
_WEEKDAYS = {name[:3].lower(): number for number, name in enumerate(WEEKDAY_NAMES)}

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ONE_SECOND = timedelta(seconds=1)


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message names the bad part."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int  # the highest value `*` stands for
    highest: int  # the highest value that may be written (7 for Sunday in day of week)
    names: dict[str, int] | None = None
    noun: str = ""  # "weekday" / "month": for "'FOO' is not a weekday name"


_FIELDS = (
    _Field("second", 0, 59, 59),
    _Field("minute", 0, 59, 59),
    _Field("hour", 0, 23, 23),
    _Field("day of month", 1, 31, 31),
    _Field("month", 1, 12, 12, _MONTHS, "month"),
    _Field("day of week", 0, 6, 7, _WEEKDAYS, "weekday"),
)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the sorted values each field allows, or an `@every` interval.

    `days_or` is true when both day fields are restricted, so that a day matches when either does.
    For `@every`, `every` holds the interval and the field tuples are empty.
    """

    expression: str
    seconds: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    hours: tuple[int, ...] = ()
    days_of_month: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    days_of_week: tuple[int, ...] = ()  # 0 = Sunday
    days_or: bool = False
    every: timedelta | None = None

    @property
    def every_hour(self) -> bool:
        """True when the hour field covers every hour: DST gaps are skipped and repeated hours fire twice."""
        return self.hours == tuple(range(24))


# -- parsing ------------------------------------------------------------------------------------------------------


def parse(expression: str) -> Cron:
    """Parse a cron expression, a descriptor or `@every <duration>`; raise CronError naming the bad part."""
    if not isinstance(expression, str):
        raise CronError("the cron expression must be a string")
    text = expression.strip()
    if not text:
        raise CronError("the cron expression is empty")
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("a time zone prefix (TZ=... or CRON_TZ=...) is not accepted here: set the schedule's time zone")
    if text.startswith("@"):
        return _parse_descriptor(text)
    return _parse_fields(text, text)


def _parse_descriptor(text: str) -> Cron:
    words = text.split()
    if words[0] == "@every":
        if len(words) != 2:
            raise CronError("'@every' takes one duration, e.g. '@every 30s', '@every 1m30s' or '@every 2h'")
        return Cron(expression=text, every=_parse_every(words[1]))
    if len(words) == 1 and words[0] in DESCRIPTORS:
        return _parse_fields(DESCRIPTORS[words[0]], text)
    raise CronError(
        f"'{text}' is not a descriptor (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly "
        "or @every <duration>)"
    )


def _parse_every(text: str) -> timedelta:
    """A Go duration (time.ParseDuration syntax) that must come to a whole number of seconds, at least 1s.

    robfig rounds what is not (500ms becomes 1s, 1.5s becomes 1s); saying so is kinder than a silent change.
    """
    try:
        nanoseconds = Duration.parse(text).nanoseconds
    except UnitError:
        raise CronError(f"'{text}' is not a duration (e.g. 30s, 1m30s, 2h; units ns, us, ms, s, m, h)") from None
    if nanoseconds < 1_000_000_000:
        raise CronError(f"'@every {text}': the interval must be at least 1s")
    if nanoseconds > MAX_EVERY_NANOSECONDS:
        raise CronError(f"'@every {text}': the interval is longer than the longest Go duration (about 292 years)")
    seconds, rest = divmod(nanoseconds, 1_000_000_000)
    if rest:
        raise CronError(f"'@every {text}': the interval must be a whole number of seconds")
    return timedelta(seconds=seconds)


def _parse_fields(text: str, expression: str) -> Cron:
    parts = text.split()
    if len(parts) not in (5, 6):
        raise CronError(f"expected 5 fields (or 6 with seconds), got {len(parts)}")
    if len(parts) == 5:
        parts = ["0", *parts]
    seconds, minutes, hours, days, months, weekdays = (
        _parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)
    )
    weekdays = tuple(sorted({0 if day == 7 else day for day in weekdays}))
    days_or = not _unrestricted(parts[3]) and not _unrestricted(parts[5])
    cron = Cron(expression, seconds, minutes, hours, days, months, weekdays, days_or)
    if not days_or:
        _check_some_day_exists(cron)
    return cron


def _unrestricted(text: str) -> bool:
    """A day field that leaves days to the other one: `*` or `?`, stepping by one. As robfig/cron (Chaos
    Mesh's parser), `*/2` counts as restricted, so `0 0 */2 * MON` fires on odd days and on Mondays."""
    base, _, step = text.partition("/")
    return base in ("*", "?") and step in ("", "1")


def _parse_field(text: str, field: _Field) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"'{text}' has an empty list entry in {field.name}")
        values.update(_parse_item(item, field))
    return tuple(sorted(values))


def _parse_item(item: str, field: _Field) -> range:
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if "/" in step_text:
            raise CronError(f"'{item}' has more than one '/' in {field.name}")
        if not (step_text.isascii() and step_text.isdigit()):
            raise CronError(f"'{step_text}' is not a step for {field.name} (expected a whole number, at least 1)")
        step = int(step_text)
        if step < 1:
            raise CronError(f"'{item}': the step for {field.name} must be at least 1")
    if span in ("*", "?"):
        return range(field.low, field.high + 1, step)
    first, dash, last = span.partition("-")
    if "-" in last:
        raise CronError(f"'{span}' has more than one '-' in {field.name}")
    if dash and (not first or not last):
        raise CronError(f"'{span}' is not a range for {field.name} (expected a-b)")
    low = _parse_value(first, field)
    if dash:
        high = _parse_value(last, field)
        if low > high:
            raise CronError(f"'{span}' is not a range for {field.name}: {first} comes after {last}")
    elif slash:
        high = max(field.high, low)  # robfig: "a/n" means a through the maximum, every n
    else:
        high = low
    return range(low, high + 1, step)


def _parse_value(text: str, field: _Field) -> int:
    if not text:
        raise CronError(f"a value is missing in {field.name}")
    if text.isascii() and text.isdigit():
        value = int(text)
        if not field.low <= value <= field.highest:
            raise CronError(f"'{text}' is out of range for {field.name} ({field.low}-{field.highest})")
        return value
    if field.names is not None and text.isalpha():
        if text.lower() in field.names:
            return field.names[text.lower()]
        raise CronError(f"'{text}' is not a {field.noun} name")
    raise CronError(f"'{text}' is not a number for {field.name}")


def _check_some_day_exists(cron: Cron) -> None:
    """`0 0 30 2 *` can never fire: refuse it now rather than search for it forever."""
    longest = max(calendar.monthrange(2000, month)[1] for month in cron.months)  # 2000: February has 29 days
    if cron.days_of_month[0] <= longest:
        return
    days = _runs(list(cron.days_of_month), str, "or")
    months = _join([MONTH_NAMES[month - 1] for month in cron.months], "or")
    raise CronError(f"'{cron.expression}' never fires: there is no day {days} in {months}")


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name` (e.g. 'Europe/Berlin', 'UTC'); CronError for anything else, paths included."""
    if not isinstance(name, str) or name not in _zone_names():
        raise CronError(f"'{name}' is not a time zone")
    return zoneinfo.ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    # 'localtime' is the host's own setting, not a zone a schedule may name.
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


# -- next fire times ----------------------------------------------------------------------------------------------


def next_after(cron: Cron, after: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first fire time strictly after `after` (aware), in UTC; fields are matched on `tz`'s wall clock.

    For `@every`, that is `after + interval`: pass the previous fire time (or the creation time).
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("after must be an aware datetime")
    if cron.every is not None:
        return after.astimezone(UTC) + cron.every  # in UTC: aware arithmetic in `tz` would add wall time
    local = after.astimezone(tz)
    after = after.astimezone(UTC).replace(tzinfo=None)  # naive UTC, like every instant below
    wall = local.replace(tzinfo=None, microsecond=0)
    start = wall + _ONE_SECOND
    earliest: datetime | None = None
    offset0, offset1 = _offsets(wall, tz)
    if offset0 > offset1:  # `after` lies in a repeated hour, on its first pass (fold 0) or its second (fold 1)
        transition = _transition(wall - offset0, wall - offset1, offset1, tz)
        first_wall, end_wall = transition + offset1, transition + offset0
        if local.fold == 1 and not cron.every_hour:
            start = max(start, end_wall)  # fixed wall times fired on the first pass already
        elif local.fold == 0 and cron.every_hour:
            candidate = _next_wall(cron, first_wall)
            if candidate < end_wall:  # fires again on the second pass, perhaps before anything else
                earliest = candidate - offset1
    for _ in range(10_000):  # each turn moves `start` forward; the bound only guards against a zone's oddities
        candidate = _next_wall(cron, start)
        offset0, offset1 = _offsets(candidate, tz)
        if offset0 == offset1:
            found = candidate - offset0
        elif offset0 < offset1:  # in a gap: the wall time does not exist
            gap_end = _transition(candidate - offset1, candidate - offset0, offset1, tz)
            if cron.every_hour:
                start = gap_end + offset1
                continue
            found = gap_end
        elif candidate - offset0 > after:  # repeated: the first pass
            found = candidate - offset0
        elif cron.every_hour and candidate - offset1 > after:  # repeated: the second pass
            found = candidate - offset1
        else:
            start = candidate + _ONE_SECOND
            continue
        result = found if earliest is None else min(found, earliest)
        return result.replace(tzinfo=UTC)
    raise CronError(f"'{cron.expression}': no fire time found after {after.isoformat()}")


def next_times(cron: Cron, after: datetime, tz: zoneinfo.ZoneInfo, n: int = 5) -> list[datetime]:
    """The next `n` fire times after `after`, strictly increasing, in UTC."""
    times: list[datetime] = []
    for _ in range(n):
        after = next_after(cron, after, tz)
        times.append(after)
    return times


def _offsets(wall: datetime, tz: zoneinfo.ZoneInfo) -> tuple[timedelta, timedelta]:
    """The UTC offsets of a naive wall time read with fold 0 and fold 1: equal unless in a gap or repeated.

    In a gap fold 0 gives the offset before the change and fold 1 the one after; so fold 0's is the smaller
    in a gap and the larger in a repeated hour (PEP 495).
    """
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert first is not None and second is not None
    return first, second


def _transition(low: datetime, high: datetime, new_offset: timedelta, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first whole-second instant in (low, high] whose offset is `new_offset` (naive UTC in and out).

    The caller knows one offset change lies in that span, so a bisection finds it.
    """
    epoch = datetime(1970, 1, 1)
    lo, hi = int((low - epoch).total_seconds()), int((high - epoch).total_seconds())
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == new_offset:
            hi = middle
        else:
            lo = middle
    return epoch + timedelta(seconds=hi)


def _next_wall(cron: Cron, start: datetime) -> datetime:
    """The first naive wall time at or after `start` that matches every field, jumping field by field."""
    year, month, day, hour, minute, second = start.year, start.month, start.day, start.hour, start.minute, start.second
    last_year = min(year + SEARCH_YEARS, 9999)
    while year <= last_year:
        found = _at_least(cron.months, month)
        if found is None:
            year, month, day, hour, minute, second = year + 1, 1, 1, 0, 0, 0
            continue
        if found != month:
            month, day, hour, minute, second = found, 1, 0, 0, 0
        found = _at_least(_days(cron.days_of_month, cron.days_of_week, cron.days_or, year, month), day)
        if found is None:
            month, day, hour, minute, second = month + 1, 1, 0, 0, 0
            continue
        if found != day:
            day, hour, minute, second = found, 0, 0, 0
        found = _at_least(cron.hours, hour)
        if found is None:
            day, hour, minute, second = day + 1, 0, 0, 0
            continue
        if found != hour:
            hour, minute, second = found, 0, 0
        found = _at_least(cron.minutes, minute)
        if found is None:
            hour, minute, second = hour + 1, 0, 0
            continue
        if found != minute:
            minute, second = found, 0
        found = _at_least(cron.seconds, second)
        if found is None:
            minute, second = minute + 1, 0
            continue
        return datetime(year, month, day, hour, minute, found)
    raise CronError(f"'{cron.expression}' never fires: no fire time in the {SEARCH_YEARS} years after {start:%Y-%m-%d}")


def _at_least(values: tuple[int, ...], value: int) -> int | None:
    index = bisect.bisect_left(values, value)
    return values[index] if index < len(values) else None


@functools.lru_cache(maxsize=4096)
def _days(days_of_month: tuple[int, ...], days_of_week: tuple[int, ...], days_or: bool, year: int,
          month: int) -> tuple[int, ...]:
    """The days of one month that match the day fields."""
    first_weekday, length = calendar.monthrange(year, month)  # Monday = 0 there; Sunday = 0 here
    sunday_based = (first_weekday + 1) % 7
    in_month, in_week = set(days_of_month), set(days_of_week)
    matching = []
    for day in range(1, length + 1):
        by_month, by_week = day in in_month, (sunday_based + day - 1) % 7 in in_week
        if (by_month or by_week) if days_or else (by_month and by_week):
            matching.append(day)
    return tuple(matching)


# -- description --------------------------------------------------------------------------------------------------


def describe(expression: str) -> str:
    """A short English description for the portal, e.g. 'at 10:00 on Monday through Friday'."""
    cron = parse(expression)
    if cron.every is not None:
        return "every " + _interval_words(int(cron.every.total_seconds()))
    time, at_clock_times = _describe_time(cron)
    days, months = _describe_days(cron)
    if at_clock_times and not days:
        days = "every day"
    return " ".join(part for part in (time, days, months) if part)


def _interval_words(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "hour"), (minutes, "minute"), (seconds, "second")]
    words = [f"{count} {unit}{'s' if count != 1 else ''}" for count, unit in parts if count]
    if len(words) == 1 and words[0].startswith("1 "):
        return words[0][2:]  # "every hour", not "every 1 hour"
    return " ".join(words)


def _describe_time(cron: Cron) -> tuple[str, bool]:
    """The time-of-day part, and whether it is a list of clock times (so "every day" reads well after it)."""
    seconds, minutes, hours = cron.seconds, cron.minutes, cron.hours
    if seconds == (0,):
        if cron.every_hour:
            if minutes == tuple(range(60)):
                return "every minute", False
            if (step := _step(minutes, 0, 59)) and 60 % step == 0:
                return f"every {step} minutes", False
            return f"hourly, at minute{_plural(minutes)} {_numbers(minutes)}", False
        if (step := _step(hours, 0, 23)) and 24 % step == 0 and len(minutes) == 1:
            return f"every {step} hours, at minute {minutes[0]}", False
    if len(seconds) == 1 and len(minutes) * len(hours) <= 6:
        pattern = "{:02}:{:02}" if seconds == (0,) else "{:02}:{:02}:{:02}"
        times = [pattern.format(hour, minute, seconds[0]) for hour in hours for minute in minutes]
        return "at " + _join(times), True
    if minutes == tuple(range(60)) and cron.every_hour:
        if seconds == tuple(range(60)):
            return "every second", False
        if (step := _step(seconds, 0, 59)) and 60 % step == 0:
            return f"every {step} seconds", False
    parts = [] if seconds == (0,) else [_unit_phrase(seconds, 0, 59, "second", leading=True)]
    parts.append(_unit_phrase(minutes, 0, 59, "minute", leading=not parts))
    parts.append(_unit_phrase(hours, 0, 23, "hour", leading=False))
    joiner = " during " if parts[0].startswith("every") else " of "
    return parts[0] + joiner + " of ".join(parts[1:]), False


def _unit_phrase(values: tuple[int, ...], low: int, high: int, unit: str, leading: bool) -> str:
    """Leading: 'every minute', 'every 15 minutes', 'at minute 5', 'at minutes 0 and 30'.
    Otherwise a noun: 'every hour', 'every 2nd hour', 'hour 9', 'hours 9 through 17'."""
    if values == tuple(range(low, high + 1)):
        return f"every {unit}"
    step = _step(values, low, high)
    if step and (high + 1) % step == 0:
        return f"every {step} {unit}s" if leading else f"every {_ordinal(step)} {unit}"
    return f"{'at ' if leading else ''}{unit}{_plural(values)} {_numbers(values)}"


def _describe_days(cron: Cron) -> tuple[str, str]:
    every_day_of_month = cron.days_of_month == tuple(range(1, 32))
    every_weekday = cron.days_of_week == tuple(range(7))
    every_month = cron.months == tuple(range(1, 13))
    months = "" if every_month else "in " + _months(cron.months)
    if len(cron.days_of_month) == 1 and len(cron.months) == 1 and every_weekday:
        return f"on {MONTH_NAMES[cron.months[0] - 1]} {cron.days_of_month[0]}", ""
    if cron.days_or:
        return f"on {_days_of_month(cron.days_of_month)} or on {_weekdays(cron.days_of_week)}", months
    if every_day_of_month and every_weekday:
        return "", months
    if every_weekday:
        return f"on {_days_of_month(cron.days_of_month)}", months
    if every_day_of_month:
        return f"on {_weekdays(cron.days_of_week)}", months
    return (f"on {_days_of_month(cron.days_of_month)}, if that day is {_weekdays(cron.days_of_week, 'or')}",
            months)


def _days_of_month(days: tuple[int, ...]) -> str:
    step = _step(days, 1, 31)
    if step:
        return f"every {_ordinal(step)} day of the month"
    return f"day{_plural(days)} {_numbers(days)} of the month"


def _weekdays(days: tuple[int, ...], last: str = "and") -> str:
    monday_first = sorted(7 if day == 0 else day for day in days)
    return _runs(monday_first, lambda day: WEEKDAY_NAMES[day % 7], last)


def _months(months: tuple[int, ...]) -> str:
    return _runs(list(months), lambda month: MONTH_NAMES[month - 1])


def _numbers(values: tuple[int, ...]) -> str:
    return _runs(list(values), str)


def _runs(values: list[int], name: Callable[[int], str], last: str = "and") -> str:
    """'Monday through Friday', '1, 15 and 20 through 25': runs of three or more read as a range."""
    parts: list[str] = []
    index = 0
    while index < len(values):
        end = index
        while end + 1 < len(values) and values[end + 1] == values[end] + 1:
            end += 1
        if end - index >= 2:
            parts.append(f"{name(values[index])} through {name(values[end])}")
        else:
            parts.extend(name(value) for value in values[index:end + 1])
        index = end + 1
    return _join(parts, last)


def _join(parts: list[str], last: str = "and") -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} {last} {parts[-1]}"


def _step(values: tuple[int, ...], low: int, high: int) -> int | None:
    """n when `values` is exactly low, low+n, ... up to high (what `*/n` gives), with n > 1."""
    if len(values) < 2 or values[0] != low:
        return None
    step = values[1] - values[0]
    return step if step > 1 and values == tuple(range(low, high + 1, step)) else None


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _plural(values: tuple[int, ...]) -> str:
    return "s" if len(values) > 1 else ""
