"""Durations, sizes, rates and percentages: what parses, to what, and the exact errors."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from injector.faults.units import Duration, Percent, Rate, Size, UnitError

NS = 1
MS = 1_000_000
S = 1_000_000_000


@pytest.mark.parametrize(
    "text,nanoseconds,canonical",
    [
        ("1.5h", 90 * 60 * S, "1h30m0s"),
        ("100ms", 100 * MS, "100ms"),
        ("-2m", -120 * S, "-2m0s"),
        ("0", 0, "0s"),
        ("1h30m", 90 * 60 * S, "1h30m0s"),
        ("2h45m30.5s", (2 * 3600 + 45 * 60) * S + 30_500 * MS, "2h45m30.5s"),
        ("1us", 1000 * NS, "1µs"),
        ("1µs", 1000 * NS, "1µs"),
        ("250ns", 250 * NS, "250ns"),
        (".5s", 500 * MS, "500ms"),
        ("+3s", 3 * S, "3s"),
        ("90s", 90 * S, "1m30s"),
    ],
)
def test_durations_parse_as_go_parses_them(text: str, nanoseconds: int, canonical: str) -> None:
    duration = Duration.parse(text)
    assert duration.nanoseconds == nanoseconds
    assert str(duration) == canonical
    assert Duration.parse(canonical) == duration


@pytest.mark.parametrize(
    "value,message",
    [
        ("abc", '"abc" is not a duration: use numbers with units ns, us, ms, s, m, h'),
        ("10", '"10" is not a duration'),
        ("1h-2m", '"1h-2m" is not a duration'),
        ("", '"" is not a duration'),
        ("1e3s", '"1e3s" is not a duration'),
        ("5 minutes", '"5 minutes" is not a duration'),
        (30, "30 is not a duration (write it as text"),
        (None, "None is not a duration"),
    ],
)
def test_bad_durations_say_why(value: object, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        Duration.parse(value)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "text,size,canonical",
    [
        ("256MB", Size(bytes=256_000_000), "256MB"),
        ("1GiB", Size(bytes=1024**3), "1GiB"),
        ("1.5GiB", Size(bytes=1536 * 1024**2), "1536MiB"),
        ("50%", Size(percent=50.0), "50%"),
        ("12.5%", Size(percent=12.5), "12.5%"),
        ("4096", Size(bytes=4096), "4KiB"),
        ("100b", Size(bytes=100), "100B"),
        ("2k", Size(bytes=2048), "2KiB"),
        ("10 MiB", Size(bytes=10 * 1024**2), "10MiB"),
    ],
)
def test_sizes_parse_bytes_and_percentages(text: str, size: Size, canonical: str) -> None:
    assert Size.parse(text) == size
    assert str(size) == canonical
    assert Size.parse(canonical) == size


@pytest.mark.parametrize(
    "value,message",
    [
        ("lots", '"lots" is not a size'),
        ("12XB", '"12XB" is not a size'),
        ("150%", '"150%" is out of range: a percentage is from 0 to 100'),
        ("0.5B", '"0.5B" is not a whole number of bytes'),
        (True, "True is not a size"),
    ],
)
def test_bad_sizes_say_why(value: object, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        Size.parse(value)
    assert str(caught.value).startswith(message)


def test_a_percentage_size_can_be_refused_where_only_bytes_make_sense() -> None:
    with pytest.raises(UnitError, match="a percentage is not allowed here"):
        Size.parse("50%", allow_percent=False)


@pytest.mark.parametrize(
    "text,bits,canonical",
    [
        ("1mbit", 1_000_000, "125kbps"),
        ("10kbps", 80_000, "10kbps"),
        ("100bit", 100, "100bit"),
        ("1mbps", 8_000_000, "1mbps"),
        ("1gbit", 1_000_000_000, "125mbps"),
        ("2kibit", 2048, "256bps"),
        ("12bit", 12, "12bit"),
    ],
)
def test_rates_parse_tc_units(text: str, bits: int, canonical: str) -> None:
    rate = Rate.parse(text)
    assert rate.bits_per_second == bits
    assert str(rate) == canonical
    assert Rate.parse(canonical) == rate


@pytest.mark.parametrize("value", ["fast", "10", "10 mph", "0mbit", 5, ""])
def test_bad_rates_say_why(value: object) -> None:
    with pytest.raises(UnitError) as caught:
        Rate.parse(value)
    assert "is not a rate" in str(caught.value) or "more than zero" in str(caught.value)


@pytest.mark.parametrize("value,expected", [(25, 25.0), ("25", 25.0), ("25%", 25.0), ("0.5", 0.5), (100, 100.0),
                                            (0, 0.0), (12.5, 12.5)])
def test_percentages_as_strings_or_numbers(value: object, expected: float) -> None:
    assert Percent.parse(value).value == expected


@pytest.mark.parametrize(
    "value,message",
    [("101", "out of range"), (-1, "out of range"), ("half", "is not a percentage"), (True, "is not a percentage"),
     ("nan", "is not a percentage"), (None, "is not a percentage")],
)
def test_bad_percentages_say_why(value: object, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        Percent.parse(value)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_every_duration_prints_to_text_that_parses_back(nanoseconds: int) -> None:
    duration = Duration(nanoseconds)
    assert Duration.parse(str(duration)) == duration


@given(st.integers(min_value=1, max_value=10**15))
def test_every_size_and_rate_prints_to_text_that_parses_back(amount: int) -> None:
    assert Size.parse(str(Size(bytes=amount))) == Size(bytes=amount)
    assert Rate.parse(str(Rate(amount))) == Rate(amount)
