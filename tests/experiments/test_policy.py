"""The blast-radius policy: each rule refuses with its name, and only when it should."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from experiments.policy import check_run, check_targets, in_window

UTC = ZoneInfo("UTC")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


@dataclass
class Policy:
    protected_namespaces: list[str] = field(default_factory=lambda: ["kube-system"])
    namespace_allowlist: list[str] = field(default_factory=list)
    require_opt_in_annotation: bool = False
    max_targets: int | None = None
    max_target_percent: int | None = None
    max_duration_seconds: int | None = None
    max_concurrent_runs: int | None = None
    allowed_windows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Target:
    key: str
    namespace: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def run_rules(policy: Policy, **kw: Any) -> list[str]:
    args = {"duration_seconds": 60.0, "one_shot": False, "selector_namespaces": ["shop"], "now": MONDAY_10,
            "active_runs": 0} | kw
    return [r.rule for r in check_run(policy, **args)]


def target_rules(policy: Policy, targets: list[Target], candidates: int | None = None) -> list[str]:
    return [r.rule for r in check_targets(policy, targets, len(targets) if candidates is None else candidates)]


def test_the_default_policy_allows_an_ordinary_run() -> None:
    assert run_rules(Policy()) == []
    assert target_rules(Policy(), [Target("pod/shop/a", "shop")]) == []


def test_kube_system_is_protected_by_default() -> None:
    assert run_rules(Policy(), selector_namespaces=["kube-system"]) == ["protected-namespace"]
    assert target_rules(Policy(), [Target("pod/kube-system/coredns", "kube-system")]) == ["protected-namespace"]


def test_the_allowlist_refuses_other_namespaces() -> None:
    policy = Policy(namespace_allowlist=["staging"])
    assert target_rules(policy, [Target("pod/staging/a", "staging")]) == []
    refusals = check_targets(policy, [Target("pod/prod/a", "prod")], 1)
    expected = [("namespace-allowlist", "pod/prod/a is in prod, not in the allowlist")]
    assert [(r.rule, r.message) for r in refusals] == expected


def test_the_opt_in_annotation_is_required_when_asked() -> None:
    policy = Policy(require_opt_in_annotation=True)
    assert target_rules(policy, [Target("pod/shop/a", "shop")]) == ["opt-in-annotation"]
    assert target_rules(policy, [Target("pod/shop/a", "shop", {"chaosplane.io/inject": "true"})]) == []
    assert target_rules(policy, [Target("agent/web-1")]) == []  # hosts have no namespace to opt in


@pytest.mark.parametrize("count,refused", [(3, []), (4, ["max-targets"])])
def test_max_targets(count: int, refused: list[str]) -> None:
    targets = [Target(f"pod/shop/{i}", "shop") for i in range(count)]
    assert target_rules(Policy(max_targets=3), targets, candidates=10) == refused


@pytest.mark.parametrize("count,refused", [(2, []), (3, ["max-target-percent"])])
def test_max_target_percent(count: int, refused: list[str]) -> None:
    targets = [Target(f"pod/shop/{i}", "shop") for i in range(count)]
    assert target_rules(Policy(max_target_percent=25), targets, candidates=10) == refused


def test_max_duration_refuses_longer_and_open_ended_runs_but_not_one_shots() -> None:
    policy = Policy(max_duration_seconds=300)
    assert run_rules(policy, duration_seconds=300.0) == []
    assert run_rules(policy, duration_seconds=301.0) == ["max-duration"]
    assert run_rules(policy, duration_seconds=None) == ["max-duration"]
    assert run_rules(policy, duration_seconds=None, one_shot=True) == []


def test_max_concurrent_runs() -> None:
    assert run_rules(Policy(max_concurrent_runs=2), active_runs=1) == []
    assert run_rules(Policy(max_concurrent_runs=2), active_runs=2) == ["max-concurrent-runs"]


WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00", "timezone": "Europe/Berlin"}
NIGHTS = {"days": ["fri"], "start": "22:00", "end": "02:00", "timezone": "UTC"}


@pytest.mark.parametrize(
    "window,when,inside",
    [
        (WEEKDAYS, datetime(2026, 11, 23, 8, 30, tzinfo=UTC), True),  # 09:30 in Berlin
        (WEEKDAYS, datetime(2026, 11, 23, 7, 30, tzinfo=UTC), False),  # 08:30 in Berlin
        (WEEKDAYS, datetime(2026, 11, 23, 16, 0, tzinfo=UTC), False),  # 17:00 in Berlin: the end is exclusive
        (WEEKDAYS, datetime(2026, 11, 28, 10, 0, tzinfo=UTC), False),  # a Saturday
        (NIGHTS, datetime(2026, 11, 27, 23, 0, tzinfo=UTC), True),  # Friday night
        (NIGHTS, datetime(2026, 11, 28, 1, 0, tzinfo=UTC), True),  # past midnight, into Saturday
        (NIGHTS, datetime(2026, 11, 28, 23, 0, tzinfo=UTC), False),  # Saturday night is not Friday's
    ],
)
def test_time_windows_in_their_own_time_zone(window: dict, when: datetime, inside: bool) -> None:
    assert in_window([window], when) is inside
    assert run_rules(Policy(allowed_windows=[window]), now=when) == ([] if inside else ["time-window"])


def test_every_refusal_says_which_rule_and_why() -> None:
    policy = Policy(max_duration_seconds=60, max_concurrent_runs=1, allowed_windows=[NIGHTS])
    messages = [str(r) for r in check_run(policy, duration_seconds=120.0, one_shot=False,
                                          selector_namespaces=["kube-system"], now=MONDAY_10, active_runs=1)]
    assert messages == [
        "max-duration: 120 s is longer than the 60 s allowed",
        "max-concurrent-runs: 1 runs are active and the policy allows 1",
        "time-window: Mon 10:00 UTC is outside every allowed window (fri 22:00-02:00 UTC)",
        "protected-namespace: the selector names kube-system, which is protected",
    ]
