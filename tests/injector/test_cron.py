"""Cron expressions for schedules: the syntax Chaos Mesh accepts, the exact errors, the next fire times in a
time zone across daylight saving changes, and the descriptions the portal shows."""
from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from injector.cron import Cron, CronError, describe, next_after, next_times, parse, zone

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # its clocks move by 30 minutes
ALL_MINUTES = tuple(range(60))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires_during_local_day(expression: str, day: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every fire time from the local midnight starting `day` to the next local midnight."""
    start = day.replace(tzinfo=tz).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
    cron, fires, after = parse(expression), [], start - timedelta(microseconds=1)
    while (after := next_after(cron, after, tz)) < end:
        fires.append(after)
    return fires


# -- syntax -------------------------------------------------------------------------------------------------------


def test_five_fields_are_minute_hour_day_month_weekday_with_seconds_zero() -> None:
    cron = parse("5 4 3 2 1")
    assert (cron.seconds, cron.minutes, cron.hours, cron.days_of_month, cron.months, cron.days_of_week) == (
        (0,), (5,), (4,), (3,), (2,), (1,))


def test_six_fields_start_with_seconds() -> None:
    cron = parse("30 5 4 3 2 1")
    assert (cron.seconds, cron.minutes, cron.hours) == ((30,), (5,), (4,))


def test_a_star_is_the_whole_range_of_its_field() -> None:
    cron = parse("* * * * *")
    assert cron.minutes == ALL_MINUTES and cron.hours == tuple(range(24))
    assert cron.days_of_month == tuple(range(1, 32)) and cron.months == tuple(range(1, 13))
    assert cron.days_of_week == tuple(range(7))


def test_a_question_mark_is_a_star() -> None:
    assert parse("0 0 ? * ?") == dataclasses.replace(parse("0 0 * * *"), expression="0 0 ? * ?")


@pytest.mark.parametrize(
    "minute,values",
    [
        ("10-14", (10, 11, 12, 13, 14)),
        ("*/15", (0, 15, 30, 45)),
        ("10-30/10", (10, 20, 30)),
        ("50/3", (50, 53, 56, 59)),
        ("1,5-7,40", (1, 5, 6, 7, 40)),
        ("*/25,7", (0, 7, 25, 50)),
        ("0-59/100", (0,)),
        ("3-3", (3,)),
    ],
)
def test_ranges_steps_and_lists(minute: str, values: tuple[int, ...]) -> None:
    assert parse(f"{minute} * * * *").minutes == values


def test_month_and_weekday_names_in_any_case_and_in_ranges() -> None:
    cron = parse("0 0 * jan,Mar-MAY/2,dec mon-Fri,sun")
    assert cron.months == (1, 3, 5, 12)
    assert cron.days_of_week == (0, 1, 2, 3, 4, 5)


def test_seven_is_sunday_too() -> None:
    assert parse("0 0 * * 7").days_of_week == (0,)
    assert parse("0 0 * * 5-7").days_of_week == (0, 5, 6)
    assert parse("0 0 * * */2").days_of_week == (0, 2, 4, 6)


def test_fields_may_be_separated_by_any_whitespace() -> None:
    assert parse("  0\t9  *  * 1-5 ").hours == (9,)


@pytest.mark.parametrize(
    "descriptor,equivalent",
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_descriptors_are_their_cron_expressions(descriptor: str, equivalent: str) -> None:
    assert parse(descriptor) == dataclasses.replace(parse(equivalent), expression=descriptor)


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30), ("1m30s", 90), ("2h", 7200), ("1s", 1), ("1000ms", 1), ("1.5m", 90), ("1h0m0s", 3600)],
)
def test_every_takes_a_go_duration_of_whole_seconds(text: str, seconds: int) -> None:
    assert parse(f"@every {text}").every == timedelta(seconds=seconds)


def test_days_match_when_either_day_field_matches_if_both_are_restricted() -> None:
    # Friday the 13th or any Friday or any 13th: 2026-02-13 is a Friday, 2026-02-20 a Friday, 2026-03-13 too.
    cron = parse("0 0 13 * FRI")
    assert cron.days_or
    fires = next_times(cron, utc(2026, 2, 1), UTC, 4)
    assert [f.date().isoformat() for f in fires] == ["2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27"]
    later = next_times(cron, utc(2026, 4, 11), UTC, 3)
    assert [f.date().isoformat() for f in later] == ["2026-04-13", "2026-04-17", "2026-04-24"]


def test_a_stepped_star_restricts_the_day_as_in_robfig_cron() -> None:
    # Chaos Mesh's parser clears the star flag of `*/2`: odd days OR Mondays.
    cron = parse("0 0 */2 * MON")
    assert cron.days_or
    fires = next_times(cron, utc(2026, 6, 1), UTC, 4)  # 2026-06-01 is a Monday
    assert [f.date().isoformat() for f in fires] == ["2026-06-03", "2026-06-05", "2026-06-07", "2026-06-08"]


@pytest.mark.parametrize("expression", ["0 0 * * MON", "0 0 ? * MON", "0 0 */1 * MON"])
def test_days_must_match_both_fields_when_the_day_of_month_is_a_star(expression: str) -> None:
    cron = parse(expression)
    assert not cron.days_or
    fires = next_times(cron, utc(2026, 6, 1), UTC, 3)  # 2026-06-01 is a Monday
    assert all(f.weekday() == 0 for f in fires)


def test_a_restricted_day_of_month_with_a_star_weekday_is_only_that_day() -> None:
    assert [f.day for f in next_times(parse("0 0 1,15 * *"), utc(2026, 1, 1), UTC, 3)] == [15, 1, 15]


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression,message",
    [
        ("", "the cron expression is empty"),
        ("   ", "the cron expression is empty"),
        ("1 2 3", "expected 5 fields (or 6 with seconds), got 3"),
        ("1 2 3 4 5 6 7", "expected 5 fields (or 6 with seconds), got 7"),
        ("61 * * * *", "'61' is out of range for minute (0-59)"),
        ("60 * * * * *", "'60' is out of range for second (0-59)"),
        ("0 24 * * *", "'24' is out of range for hour (0-23)"),
        ("0 0 0 * *", "'0' is out of range for day of month (1-31)"),
        ("0 0 32 * *", "'32' is out of range for day of month (1-31)"),
        ("0 0 * 13 *", "'13' is out of range for month (1-12)"),
        ("0 0 * * 8", "'8' is out of range for day of week (0-7)"),
        ("0 0 * * 1-9", "'9' is out of range for day of week (0-7)"),
        ("0 0 * * FOO", "'FOO' is not a weekday name"),
        ("0 0 * * MONDAY", "'MONDAY' is not a weekday name"),
        ("0 0 * FOO *", "'FOO' is not a month name"),
        ("0 0 * * JAN", "'JAN' is not a weekday name"),
        ("x * * * *", "'x' is not a number for minute"),
        ("0 0 L * *", "'L' is not a number for day of month"),
        ("0 0 * * 5#3", "'5#3' is not a number for day of week"),
        ("+5 * * * *", "'+5' is not a number for minute"),
        ("5-1 * * * *", "'5-1' is not a range for minute: 5 comes after 1"),
        ("0 0 * * FRI-MON", "'FRI-MON' is not a range for day of week: FRI comes after MON"),
        ("1-2-3 * * * *", "'1-2-3' has more than one '-' in minute"),
        ("-5 * * * *", "'-5' is not a range for minute (expected a-b)"),
        ("5- * * * *", "'5-' is not a range for minute (expected a-b)"),
        ("*/0 * * * *", "'*/0': the step for minute must be at least 1"),
        ("*/x * * * *", "'x' is not a step for minute (expected a whole number, at least 1)"),
        ("*/ * * * *", "'' is not a step for minute (expected a whole number, at least 1)"),
        ("1/2/3 * * * *", "'1/2/3' has more than one '/' in minute"),
        ("1,,2 * * * *", "'1,,2' has an empty list entry in minute"),
        ("0 0 30 2 *", "'0 0 30 2 *' never fires: there is no day 30 in February"),
        ("0 0 31 2,4 *", "'0 0 31 2,4 *' never fires: there is no day 31 in February or April"),
        ("0 0 30,31 2 ?", "'0 0 30,31 2 ?' never fires: there is no day 30 or 31 in February"),
        ("@fortnightly", "'@fortnightly' is not a descriptor (use @yearly, @annually, @monthly, @weekly, @daily, "
                         "@midnight, @hourly or @every <duration>)"),
        ("@Daily", "'@Daily' is not a descriptor (use @yearly, @annually, @monthly, @weekly, @daily, "
                   "@midnight, @hourly or @every <duration>)"),
        ("@every", "'@every' takes one duration, e.g. '@every 30s', '@every 1m30s' or '@every 2h'"),
        ("@every 1m 30s", "'@every' takes one duration, e.g. '@every 30s', '@every 1m30s' or '@every 2h'"),
        ("@every 30", "'30' is not a duration (e.g. 30s, 1m30s, 2h; units ns, us, ms, s, m, h)"),
        ("@every 3x", "'3x' is not a duration (e.g. 30s, 1m30s, 2h; units ns, us, ms, s, m, h)"),
        ("@every 1.5s", "'@every 1.5s': the interval must be a whole number of seconds"),
        ("@every 1500ms", "'@every 1500ms': the interval must be a whole number of seconds"),
        ("@every 500ms", "'@every 500ms': the interval must be at least 1s"),
        ("@every 0", "'@every 0': the interval must be at least 1s"),
        ("@every -1m", "'@every -1m': the interval must be at least 1s"),
        ("@every 3000000h", "'@every 3000000h': the interval is longer than the longest Go duration (about 292 years)"),
        ("CRON_TZ=Europe/Berlin 0 9 * * *",
         "a time zone prefix (TZ=... or CRON_TZ=...) is not accepted here: set the schedule's time zone"),
    ],
)
def test_bad_expressions_say_which_part_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse(expression)
    assert str(caught.value) == message


def test_a_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="got 1"):
        parse("daily")


def test_both_day_fields_restricted_fires_even_when_the_day_of_month_cannot() -> None:
    # Day 31 of February never comes, but Fridays in February do.
    assert next_after(parse("0 0 31 2 FRI"), utc(2026, 1, 1), UTC) == utc(2026, 2, 6)


def test_a_search_that_finds_nothing_raises_never_fires_instead_of_looping() -> None:
    # parse() refuses `0 0 30 2 *`; a Cron built by hand must not hang next_after either.
    impossible = dataclasses.replace(parse("0 0 1 2 *"), days_of_month=(30,))
    began = time.perf_counter()
    with pytest.raises(CronError, match="never fires"):
        next_after(impossible, utc(2026, 1, 1), UTC)
    assert time.perf_counter() - began < 2


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "US/Eastern"])
def test_zone_accepts_iana_names(name: str) -> None:
    assert zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name", ["Mars/Base", "", "Europe", "europe/berlin", "../etc/passwd", "/etc/localtime", "localtime", " UTC"]
)
def test_zone_refuses_anything_else(name: str) -> None:
    with pytest.raises(CronError) as caught:
        zone(name)
    assert str(caught.value) == f"'{name}' is not a time zone"


# -- next fire times ----------------------------------------------------------------------------------------------


def test_next_after_is_strictly_after_and_in_utc() -> None:
    cron = parse("*/15 * * * *")
    assert next_after(cron, utc(2026, 5, 1, 10, 0), UTC) == utc(2026, 5, 1, 10, 15)
    assert next_after(cron, utc(2026, 5, 1, 10, 14, 59, 999999), UTC) == utc(2026, 5, 1, 10, 15)
    result = next_after(cron, datetime(2026, 5, 1, 12, 7, tzinfo=BERLIN), BERLIN)
    assert result == utc(2026, 5, 1, 10, 15) and result.tzinfo is UTC


def test_fields_are_matched_on_the_schedules_wall_clock() -> None:
    cron = parse("0 9 * * *")
    assert next_after(cron, utc(2026, 1, 10), BERLIN) == utc(2026, 1, 10, 8)  # CET, +1
    assert next_after(cron, utc(2026, 7, 10), BERLIN) == utc(2026, 7, 10, 7)  # CEST, +2
    assert next_after(cron, utc(2026, 7, 10), NEW_YORK) == utc(2026, 7, 10, 13)  # EDT, -4
    assert next_after(cron, utc(2026, 7, 10), ZoneInfo("Asia/Kolkata")) == utc(2026, 7, 10, 3, 30)


def test_the_weekday_is_the_local_one() -> None:
    # 23:30 UTC on Sunday 2026-05-03 is already Monday in Berlin.
    assert next_after(parse("30 1 * * MON"), utc(2026, 5, 3, 12), BERLIN) == utc(2026, 5, 3, 23, 30)


def test_an_aware_after_is_required() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_after(parse("* * * * *"), datetime(2026, 1, 1), UTC)


def test_six_fields_fire_on_seconds() -> None:
    fires = next_times(parse("*/20 30 9 * * *"), utc(2026, 3, 1, 9, 30, 20), UTC, 3)
    assert fires == [utc(2026, 3, 1, 9, 30, 40), utc(2026, 3, 2, 9, 30), utc(2026, 3, 2, 9, 30, 20)]


def test_every_fires_an_interval_of_elapsed_time_after_the_previous_fire() -> None:
    cron = parse("@every 1m30s")
    after = datetime(2026, 3, 29, 1, 59, 10, tzinfo=BERLIN)  # 00:59:10 UTC, just before the spring-forward gap
    assert next_times(cron, after, BERLIN, 3) == [utc(2026, 3, 29, 1, 0, 40), utc(2026, 3, 29, 1, 2, 10),
                                                  utc(2026, 3, 29, 1, 3, 40)]
    # two hours after 01:00 CET is 04:00 CEST: two hours elapse, whatever the wall clock says
    assert next_after(parse("@every 2h"), datetime(2026, 3, 29, 1, tzinfo=BERLIN), BERLIN) == utc(2026, 3, 29, 2)


def test_a_leap_day_schedule_finds_the_next_leap_year_quickly() -> None:
    cron = parse("0 0 29 2 *")
    began = time.perf_counter()
    assert next_times(cron, utc(2026, 3, 1), UTC, 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    assert next_after(cron, utc(2026, 3, 1), BERLIN) == utc(2028, 2, 28, 23)
    assert next_after(parse("0 0 29 2 MON"), utc(2026, 3, 1), UTC) == utc(2027, 2, 1)  # a February Monday
    assert time.perf_counter() - began < 0.5


def test_next_times_are_strictly_increasing() -> None:
    fires = next_times(parse("0,30 * * * *"), utc(2026, 10, 24, 23, 10), BERLIN, 8)
    assert len(fires) == 8 and all(a < b for a, b in zip(fires, fires[1:], strict=False))


# -- daylight saving time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tz,day,first_after_gap",
    [
        (BERLIN, datetime(2026, 3, 29), utc(2026, 3, 29, 1)),  # 02:00 CET -> 03:00 CEST
        (NEW_YORK, datetime(2026, 3, 8), utc(2026, 3, 8, 7)),  # 02:00 EST -> 03:00 EDT
    ],
)
def test_a_wall_time_in_the_spring_gap_fires_once_at_the_end_of_the_gap(
    tz: ZoneInfo, day: datetime, first_after_gap: datetime
) -> None:
    assert fires_during_local_day("30 2 * * *", day, tz) == [first_after_gap]
    assert fires_during_local_day("*/15 2 * * *", day, tz) == [first_after_gap]
    assert fires_during_local_day("*/20 * 2 * * *", day, tz) == [first_after_gap]
    half_past = first_after_gap + timedelta(minutes=30)
    assert fires_during_local_day("0,30 2,3 * * *", day, tz) == [first_after_gap, half_past]
    # and the day after, 02:30 is an ordinary time again
    assert next_after(parse("30 2 * * *"), first_after_gap, tz).astimezone(tz).replace(tzinfo=None) == (
        day + timedelta(days=1, hours=2, minutes=30))


@pytest.mark.parametrize(
    "tz,day,repeated_hour,first_pass",
    [
        (BERLIN, datetime(2026, 10, 25), 2, utc(2026, 10, 25, 0, 30)),  # 03:00 CEST -> 02:00 CET
        (NEW_YORK, datetime(2026, 11, 1), 1, utc(2026, 11, 1, 5, 30)),  # 02:00 EDT -> 01:00 EST
    ],
)
def test_a_wall_time_in_the_repeated_hour_fires_once_on_its_first_pass(
    tz: ZoneInfo, day: datetime, repeated_hour: int, first_pass: datetime
) -> None:
    fires = fires_during_local_day(f"30 {repeated_hour} * * *", day, tz)
    assert fires == [first_pass] and fires[0].astimezone(tz).fold == 0
    assert len(fires_during_local_day(f"*/15 {repeated_hour} * * *", day, tz)) == 4
    # a schedule asked from inside the second pass waits for the next day
    second_pass = first_pass + timedelta(hours=1, minutes=-20)
    assert second_pass.astimezone(tz).fold == 1
    assert next_after(parse(f"30 {repeated_hour} * * *"), second_pass, tz) == first_pass + timedelta(days=1, hours=1)


@pytest.mark.parametrize(
    "tz,spring,autumn",
    [(BERLIN, datetime(2026, 3, 29), datetime(2026, 10, 25)), (NEW_YORK, datetime(2026, 3, 8), datetime(2026, 11, 1))],
)
def test_a_schedule_over_every_hour_follows_elapsed_time(tz: ZoneInfo, spring: datetime, autumn: datetime) -> None:
    for expression, per_hour in (("0 * * * *", 1), ("@hourly", 1), ("*/15 * * * *", 4), ("30 * * * *", 1)):
        assert len(fires_during_local_day(expression, spring, tz)) == 23 * per_hour
        autumn_fires = fires_during_local_day(expression, autumn, tz)
        assert len(autumn_fires) == 25 * per_hour
        gaps = {b - a for a, b in zip(autumn_fires, autumn_fires[1:], strict=False)}
        assert gaps == {timedelta(minutes=60 // per_hour)}  # both passes, evenly spaced, no duplicates
    assert len(fires_during_local_day("0 0 * * *", spring, tz)) == 1
    assert len(fires_during_local_day("0 0 * * *", autumn, tz)) == 1


def test_an_every_hour_schedule_fires_again_on_the_second_pass_when_asked_from_the_first() -> None:
    # 02:45 CEST (first pass) -> 02:30 CET (second pass), 01:30 UTC
    assert next_after(parse("30 * * * *"), utc(2026, 10, 25, 0, 45), BERLIN) == utc(2026, 10, 25, 1, 30)
    # 02:10 CET (second pass) -> 02:30 CET
    assert next_after(parse("30 * * * *"), utc(2026, 10, 25, 1, 10), BERLIN) == utc(2026, 10, 25, 1, 30)


def test_utc_has_no_gaps_and_no_repeats() -> None:
    assert len(fires_during_local_day("0 * * * *", datetime(2026, 3, 29), UTC)) == 24
    assert len(fires_during_local_day("30 2 * * *", datetime(2026, 10, 25), UTC)) == 1


def test_a_half_hour_shift_is_handled_like_any_other() -> None:
    # Lord Howe: 2026-10-04 02:00 (+10:30) -> 02:30 (+11); 02:15 does not exist and fires at 02:30.
    assert fires_during_local_day("15 2 * * *", datetime(2026, 10, 4), LORD_HOWE) == [utc(2026, 10, 3, 15, 30)]
    assert len(fires_during_local_day("*/30 * * * *", datetime(2026, 10, 4), LORD_HOWE)) == 47
    assert len(fires_during_local_day("*/30 * * * *", datetime(2026, 4, 5), LORD_HOWE)) == 49


# -- descriptions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression,description",
    [
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 * * * *", "hourly, at minute 0"),
        ("@hourly", "hourly, at minute 0"),
        ("0,30 * * * *", "every 30 minutes"),
        ("5,35 * * * *", "hourly, at minutes 5 and 35"),
        ("0 */2 * * *", "every 2 hours, at minute 0"),
        ("30 2 * * *", "at 02:30 every day"),
        ("@daily", "at 00:00 every day"),
        ("0 10 * * 1-5", "at 10:00 on Monday through Friday"),
        ("0 9,17 * * MON,WED,FRI", "at 09:00 and 17:00 on Monday, Wednesday and Friday"),
        ("0 8 * * sat,sun", "at 08:00 on Saturday and Sunday"),
        ("30 2 1 * *", "at 02:30 on day 1 of the month"),
        ("@monthly", "at 00:00 on day 1 of the month"),
        ("@weekly", "at 00:00 on Sunday"),
        ("@yearly", "at 00:00 on January 1"),
        ("0 12 * JAN,JUL *", "at 12:00 every day in January and July"),
        ("0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday"),
        ("0 0 */2 * 1", "at 00:00 on every 2nd day of the month or on Monday"),
        ("*/10 9-17 * * 1-5", "every 10 minutes during hours 9 through 17 on Monday through Friday"),
        ("30 9-17 * * *", "at minute 30 of hours 9 through 17"),
        ("*/7 * * * *", "hourly, at minutes 0, 7, 14, 21, 28, 35, 42, 49 and 56"),
        ("@every 30s", "every 30 seconds"),
        ("@every 1m30s", "every 1 minute 30 seconds"),
        ("@every 2h", "every 2 hours"),
        ("@every 1h", "every hour"),
        ("*/30 * * * * *", "every 30 seconds"),
        ("* * * * * *", "every second"),
        ("30 0 10 * * *", "at 10:00:30 every day"),
        ("15 10 * * * *", "at second 15 of minute 10 of every hour"),
    ],
)
def test_describe_in_plain_english(expression: str, description: str) -> None:
    assert describe(expression) == description


def test_describe_refuses_what_parse_refuses() -> None:
    with pytest.raises(CronError, match="'61' is out of range for minute"):
        describe("61 * * * *")


# -- properties ---------------------------------------------------------------------------------------------------

TRANSITIONS = [  # where these zones change offset in 2026, and one ordinary instant for UTC
    (BERLIN, utc(2026, 3, 29, 1)), (BERLIN, utc(2026, 10, 25, 1)),
    (NEW_YORK, utc(2026, 3, 8, 7)), (NEW_YORK, utc(2026, 11, 1, 6)),
    (LORD_HOWE, utc(2026, 4, 4, 15)), (LORD_HOWE, utc(2026, 10, 3, 15, 30)),
    (UTC, utc(2026, 6, 1)),
]


def test_the_transitions_used_below_are_transitions() -> None:
    for tz, instant in TRANSITIONS[:-1]:
        assert (instant - timedelta(seconds=1)).astimezone(tz).utcoffset() != instant.astimezone(tz).utcoffset()


def _field(low: int, high: int, names: tuple[str, ...] = (), highest: int | None = None) -> st.SearchStrategy[str]:
    top = high if highest is None else highest
    value = st.integers(low, top)

    def show(number: int) -> st.SearchStrategy[str]:
        options = [st.just(str(number))]
        if names and number - low < len(names):
            options.append(st.sampled_from([names[number - low], names[number - low].lower()]))
        return st.one_of(options)

    single = value.flatmap(show)
    span = st.tuples(value, value).map(sorted).flatmap(lambda ab: st.tuples(show(ab[0]), show(ab[1])))
    step = st.integers(1, high - low + 1)
    item = st.one_of(
        st.just("*"),
        step.map(lambda n: f"*/{n}"),
        single,
        span.map(lambda ab: f"{ab[0]}-{ab[1]}"),
        st.tuples(span, step).map(lambda x: f"{x[0][0]}-{x[0][1]}/{x[1]}"),
        st.tuples(single, step).map(lambda x: f"{x[0]}/{x[1]}"),
    )
    return st.lists(item, min_size=1, max_size=3).map(",".join)


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
expressions = st.tuples(
    st.one_of(st.just(""), st.integers(0, 59).map(str), st.just("*/20"), st.just("10,50")),  # seconds, or none
    _field(0, 59),
    # the hours where these zones' clocks change come up often
    st.sampled_from(["*", "*", "*/2", "0-23", "2", "1-3", ""]).flatmap(lambda h: st.just(h) if h else _field(0, 23)),
    st.one_of(st.just("*"), st.just("?"), _field(1, 31)),
    st.one_of(st.just("*"), _field(1, 12, MONTHS)),
    st.one_of(st.just("*"), st.just("?"), _field(0, 6, WEEKDAYS, highest=7)),
).map(lambda fields: " ".join(fields).strip())
# zone, after: mostly hours or days around a change of offset, so the rules for gaps and repeats get exercised
seconds_from_transition = st.one_of(
    st.integers(-5400, 5400), st.integers(-5400, 5400), st.integers(-3 * 86400, 3 * 86400),
    st.integers(-20 * 365 * 86400, 20 * 365 * 86400),
)
cases = st.tuples(st.sampled_from(TRANSITIONS), seconds_from_transition, st.integers(0, 999_999)).map(
    lambda c: (c[0][0], c[0][1] + timedelta(seconds=c[1], microseconds=c[2])))


def _day_matches(cron: Cron, day: date) -> bool:
    by_month, by_week = day.day in cron.days_of_month, day.isoweekday() % 7 in cron.days_of_week
    return day.month in cron.months and ((by_month or by_week) if cron.days_or else (by_month and by_week))


def _fire_instants(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The rules, for one matching wall time: the instants that show it (one, two when repeated, none in a gap);
    a repeated one fires once unless the hour is a wildcard; one in a gap fires at the first instant after the gap
    unless the hour is a wildcard."""
    shown = sorted({instant for fold in (0, 1)
                    if (instant := wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)).astimezone(tz).replace(
                        tzinfo=None) == wall})
    if shown:
        return shown if every_hour else shown[:1]
    if every_hour:
        return []
    after_gap = wall.replace(tzinfo=tz).astimezone(UTC)  # somewhere after the gap; walk back to its first instant
    for step in (timedelta(minutes=1), timedelta(seconds=1)):
        while (after_gap - step).astimezone(tz).replace(tzinfo=None) > wall:
            after_gap -= step
    return [after_gap]


def _reference_next(cron: Cron, after: datetime, tz: ZoneInfo, until: datetime) -> datetime | None:
    """The first fire after `after`, by listing the matching wall times of each day up to `until` in order.

    A wall time fires within a few hours of what it reads (no zone moves its clocks by three hours), so walls more
    than three hours before `after`'s, or after the best fire found so far, need not be looked at.
    """
    every_hour = cron.hours == tuple(range(24))
    slack = timedelta(hours=3)
    first_wall = after.astimezone(tz).replace(tzinfo=None) - slack
    best: datetime | None = None
    day = first_wall.date()
    while day <= until.astimezone(tz).date() + timedelta(days=1):
        if _day_matches(cron, day):
            for hour, minute, second in itertools.product(cron.hours, cron.minutes, cron.seconds):
                wall = datetime(day.year, day.month, day.day, hour, minute, second)
                if wall < first_wall:
                    continue
                if best is not None and wall > best.astimezone(tz).replace(tzinfo=None) + slack:
                    return best
                for instant in _fire_instants(wall, tz, every_hour):
                    if instant > after and (best is None or instant < best):
                        best = instant
        day += timedelta(days=1)
    return best


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(expressions, cases)
def test_next_after_is_the_first_fire_after(expression: str, case: tuple[ZoneInfo, datetime]) -> None:
    tz, after = case
    try:
        cron = parse(expression)
    except CronError:
        assume(False)  # e.g. day 31 in February only
        raise
    result = next_after(cron, after, tz)
    assert result > after and result.tzinfo is UTC
    local = result.astimezone(tz)
    after_a_gap = (result - timedelta(seconds=1)).astimezone(tz).utcoffset() < local.utcoffset()  # type: ignore[operator]
    matches = _day_matches(cron, local.date()) and (local.hour, local.minute, local.second) in set(
        itertools.product(cron.hours, cron.minutes, cron.seconds))
    assert matches or after_a_gap
    if result - after <= timedelta(days=800):
        assert result == _reference_next(cron, after, tz, until=result)
    assert next_after(cron, result, tz) > result
