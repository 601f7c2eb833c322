"""The five modes, with Chaos Mesh's semantics, as properties over any list of candidates and seed."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from injector.faults.params import FieldError
from injector.selection import Mode, ModeSpec, select

candidates = st.lists(st.integers(), max_size=200, unique=True)
seeds = st.integers(min_value=0, max_value=2**63)
percents = st.integers(min_value=1, max_value=100)


@given(candidates, seeds)
def test_all_selects_every_candidate(items: list[int], seed: int) -> None:
    assert select(items, ModeSpec(Mode.ALL), seed) == items


@given(candidates, seeds)
def test_one_selects_exactly_one_unless_there_is_none(items: list[int], seed: int) -> None:
    chosen = select(items, ModeSpec(Mode.ONE), seed)
    assert len(chosen) == min(1, len(items)) and set(chosen) <= set(items)


@given(candidates, seeds, st.integers(min_value=1, max_value=500))
def test_fixed_selects_n_capped_at_the_count(items: list[int], seed: int, n: int) -> None:
    chosen = select(items, ModeSpec(Mode.FIXED, n), seed)
    assert len(chosen) == min(n, len(items)) and set(chosen) <= set(items)


@given(candidates, seeds, percents)
def test_fixed_percent_rounds_up(items: list[int], seed: int, percent: int) -> None:
    chosen = select(items, ModeSpec(Mode.FIXED_PERCENT, percent), seed)
    assert len(chosen) == math.ceil(len(items) * percent / 100)
    assert len(chosen) <= len(items) and set(chosen) <= set(items)


@given(candidates, seeds, percents)
def test_random_max_percent_stays_within_its_share(items: list[int], seed: int, percent: int) -> None:
    chosen = select(items, ModeSpec(Mode.RANDOM_MAX_PERCENT, percent), seed)
    assert 0 <= len(chosen) <= math.floor(len(items) * percent / 100)
    assert set(chosen) <= set(items)


@given(candidates, seeds, st.sampled_from(list(Mode)), percents)
def test_the_same_seed_selects_the_same_targets_in_their_order(items: list[int], seed: int, mode: Mode, v: int) -> None:
    spec = ModeSpec(mode, None if mode in (Mode.ONE, Mode.ALL) else v)
    first = select(items, spec, seed)
    assert select(list(items), spec, seed) == first
    assert first == [i for i in items if i in set(first)] and len(set(first)) == len(first)


def test_random_max_percent_does_sometimes_pick_none_and_sometimes_many() -> None:
    sizes = {len(select(list(range(100)), ModeSpec(Mode.RANDOM_MAX_PERCENT, 50), seed)) for seed in range(300)}
    assert 0 in sizes and max(sizes) > 40


def test_different_seeds_pick_different_targets() -> None:
    picks = {tuple(select(list(range(50)), ModeSpec(Mode.FIXED, 5), seed)) for seed in range(20)}
    assert len(picks) > 15


@pytest.mark.parametrize(
    "mode,value,path,message",
    [
        (None, None, "spec.mode", "is required"),
        ("some", None, "spec.mode", "is not one of"),
        ("fixed", None, "spec.value", "is not a whole number of targets"),
        ("fixed", "0", "spec.value", "at least 1"),
        ("fixed", "two", "spec.value", "is not a whole number"),
        ("fixed-percent", "0", "spec.value", "out of range"),
        ("random-max-percent", "101", "spec.value", "out of range"),
        ("one", "3", "spec.value", "must be empty with mode one"),
    ],
)
def test_modes_and_values_are_checked_together(mode: object, value: object, path: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        ModeSpec.parse(mode, value, "spec")
    assert caught.value.path == path and message in caught.value.message


def test_values_come_as_strings_or_numbers() -> None:
    assert ModeSpec.parse("fixed", "3") == ModeSpec.parse("fixed", 3) == ModeSpec(Mode.FIXED, 3)
    assert ModeSpec(Mode.FIXED_PERCENT, 25).dump() == {"mode": "fixed-percent", "value": "25"}
