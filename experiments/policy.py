"""The blast-radius policy, checked before any injection: pure functions over a tenant's Policy, the
experiment's definition and the targets a run would touch. Each refusal names its rule, so a user
learns exactly which limit stopped the run (and an owner which setting to change).

Two checks, because some rules need the targets and some do not:
- `check_run` before anything is resolved: duration, time windows, concurrent runs, and namespaces
  the selector names outright;
- `check_targets` once the mode has picked: protected namespaces, the allowlist or the opt-in
  annotation, and the maximum number and share of targets.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from tenants.models import OPT_IN_ANNOTATION

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PolicyLike(Protocol):
    protected_namespaces: list[str]
    namespace_allowlist: list[str]
    require_opt_in_annotation: bool
    max_targets: int | None
    max_target_percent: int | None
    max_duration_seconds: int | None
    max_concurrent_runs: int | None
    allowed_windows: list[dict[str, Any]]


class TargetLike(Protocol):
    key: str
    namespace: str
    annotations: dict[str, str]


@dataclass(frozen=True)
class Refusal:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def check_run(
    policy: PolicyLike,
    *,
    duration_seconds: float | None,
    one_shot: bool,
    selector_namespaces: Iterable[str],
    now: datetime,
    active_runs: int,
) -> list[Refusal]:
    refusals: list[Refusal] = []
    limit = policy.max_duration_seconds
    if limit is not None and not one_shot:
        if duration_seconds is None:
            refusals.append(
                Refusal("max-duration", f"a run must have a duration of at most {limit} s; this one has none")
            )
        elif duration_seconds > limit:
            refusals.append(Refusal("max-duration", f"{duration_seconds:g} s is longer than the {limit} s allowed"))
    if policy.max_concurrent_runs is not None and active_runs >= policy.max_concurrent_runs:
        refusals.append(Refusal(
            "max-concurrent-runs", f"{active_runs} runs are active and the policy allows {policy.max_concurrent_runs}"
        ))
    if policy.allowed_windows and not in_window(policy.allowed_windows, now):
        when = f"{now:%a %H:%M %Z}".strip()
        refusals.append(Refusal("time-window", f"{when} is outside every allowed window ({windows_text(policy)})"))
    protected = set(policy.protected_namespaces)
    for namespace in selector_namespaces:
        if namespace in protected:
            refusals.append(Refusal("protected-namespace", f"the selector names {namespace}, which is protected"))
    return refusals


def check_targets(policy: PolicyLike, targets: Sequence[TargetLike], candidates: int) -> list[Refusal]:
    refusals: list[Refusal] = []
    protected = set(policy.protected_namespaces)
    allow = set(policy.namespace_allowlist)
    for target in targets:
        namespace = target.namespace
        if not namespace:
            continue  # hosts and cloud resources have no namespace
        if namespace in protected:
            refusals.append(Refusal("protected-namespace", f"{target.key} is in {namespace}, which is protected"))
        elif allow and namespace not in allow:
            refusals.append(Refusal("namespace-allowlist", f"{target.key} is in {namespace}, not in the allowlist"))
        elif not allow and policy.require_opt_in_annotation and target.annotations.get(OPT_IN_ANNOTATION) != "true":
            refusals.append(Refusal(
                "opt-in-annotation", f"{target.key} does not carry the annotation {OPT_IN_ANNOTATION}=\"true\""
            ))
    if policy.max_targets is not None and len(targets) > policy.max_targets:
        refusals.append(Refusal("max-targets", f"{len(targets)} targets; the policy allows {policy.max_targets}"))
    percent = policy.max_target_percent
    if percent is not None and candidates and len(targets) * 100 > percent * candidates:
        share = 100 * len(targets) / candidates
        refusals.append(
            Refusal("max-target-percent", f"{share:.0f}% of the {candidates} candidates; the policy allows {percent}%")
        )
    return refusals


def in_window(windows: Iterable[dict[str, Any]], now: datetime) -> bool:
    """Whether `now` falls in any window; a window whose end is before its start runs past midnight
    (its days name the day it starts)."""
    for window in windows:
        local = now.astimezone(ZoneInfo(window.get("timezone") or "UTC"))
        start, end = _clock(window["start"]), _clock(window["end"])
        days = set(window["days"])
        today, yesterday = DAYS[local.weekday()], DAYS[(local - timedelta(days=1)).weekday()]
        clock = local.time()
        if start < end:
            if today in days and start <= clock < end:
                return True
        elif (today in days and clock >= start) or (yesterday in days and clock < end):
            return True
    return False


def windows_text(policy: PolicyLike) -> str:
    return "; ".join(
        f"{','.join(w['days'])} {w['start']}-{w['end']} {w.get('timezone') or 'UTC'}" for w in policy.allowed_windows
    )


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))
