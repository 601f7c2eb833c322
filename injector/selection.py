"""Target selection with Chaos Mesh's semantics: the selector fields (pods, or hosts running the
agent), the five modes, and `select()`, a pure function over a list of candidates that a recorded
seed makes reproducible.

Modes (Chaos Mesh pkg/selector/generic/mode):
- one: one candidate at random;
- all: every candidate;
- fixed (value N): N at random, or all when there are fewer than N;
- fixed-percent (value P): ceil(P% of the candidates) at random (Chaos Mesh rounds up: a percent
  of a non-empty list never selects nothing unless P is 0);
- random-max-percent (value P): a percent drawn uniformly from [0, P], then floor of that share;
  it may select none.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from injector.faults.params import Enum, Field, FieldError, ListOf, MapOf, Obj, Str, join

T = TypeVar("T")

DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
LABEL_KEY = r"([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?/)?[a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
LABEL_VALUE = r"(([a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)?)"


class Mode(StrEnum):
    ONE = "one"
    ALL = "all"
    FIXED = "fixed"
    FIXED_PERCENT = "fixed-percent"
    RANDOM_MAX_PERCENT = "random-max-percent"


NAMESPACE = Str(min_length=1, max_length=63, pattern=DNS_LABEL, pattern_help="a namespace name (RFC 1123 label)")
OBJECT_NAME = Str(min_length=1, max_length=253, pattern=NAME, pattern_help="a Kubernetes object name")
LABELS = MapOf(
    Str(max_length=63, pattern=LABEL_VALUE, pattern_help="a label value"),
    key=Str(min_length=1, max_length=317, pattern=LABEL_KEY, pattern_help="a label key"),
)
EXPRESSION = Obj(
    (
        Field("key", Str(min_length=1, pattern=LABEL_KEY, pattern_help="a label key"), required=True),
        Field("operator", Enum(("In", "NotIn", "Exists", "DoesNotExist")), required=True),
        Field("values", ListOf(Str(max_length=63))),
    ),
    validators=(
        lambda v, path: _check_expression(v, path),
    ),
)


def _check_expression(values: dict[str, Any], path: str) -> None:
    wants_values = values["operator"] in ("In", "NotIn")
    if wants_values and not values.get("values"):
        raise FieldError(join(path, "values"), f"is required and must not be empty with operator {values['operator']}")
    if not wants_values and values.get("values"):
        raise FieldError(join(path, "values"), f"must be empty with operator {values['operator']}")


GENERIC_SELECTOR_FIELDS = (
    Field("namespaces", ListOf(NAMESPACE, unique=True), label="Namespaces", help="Namespaces the targets are in."),
    Field("labelSelectors", LABELS, label="Labels", help="Every label must match."),
    Field("expressionSelectors", ListOf(EXPRESSION), label="Label expressions", help="Set-based label rules."),
    Field("annotationSelectors", MapOf(Str()), label="Annotations", help="Every annotation must match."),
    Field("fieldSelectors", MapOf(Str()), label="Fields", help="Field selectors, e.g. metadata.name."),
)

POD_SELECTOR = Obj(
    GENERIC_SELECTOR_FIELDS
    + (
        Field("nodes", ListOf(OBJECT_NAME, unique=True), label="Nodes", help="Only pods on these nodes."),
        Field("nodeSelectors", LABELS, label="Node labels", help="Only pods on nodes with these labels."),
        Field(
            "pods", MapOf(ListOf(OBJECT_NAME, min_items=1), key=NAMESPACE), label="Pods",
            help="Namespace -> pod names: exactly these pods.",
        ),
        Field(
            "podPhaseSelectors",
            ListOf(Enum(("Pending", "Running", "Succeeded", "Failed", "Unknown")), unique=True),
            label="Pod phases",
        ),
    )
)

HOST_SELECTOR = Obj(
    GENERIC_SELECTOR_FIELDS
    + (
        Field(
            "physicalMachines", MapOf(ListOf(OBJECT_NAME, min_items=1), key=NAMESPACE), label="Hosts",
            help="Namespace -> host names (Chaos Mesh's PhysicalMachine objects; here, agents by name).",
        ),
        Field("agents", ListOf(OBJECT_NAME, unique=True), label="Agents", help="Agents by name."),
    )
)


@dataclass(frozen=True)
class ModeSpec:
    """A mode and its value, checked together: fixed needs a whole number >= 1, the percent modes
    a number from 0 to 100 (Chaos Mesh keeps the value as a string; so do we on the way out)."""

    mode: Mode
    value: int | None = None

    @classmethod
    def parse(cls, mode: Any, value: Any, path: str = "spec") -> ModeSpec:
        if mode is None:
            raise FieldError(join(path, "mode"), f"is required (one of: {', '.join(Mode)})")
        if mode not in Mode.__members__.values():
            raise FieldError(join(path, "mode"), f"{mode!r} is not one of: {', '.join(Mode)}")
        mode = Mode(mode)
        if mode in (Mode.ONE, Mode.ALL):
            if value not in (None, ""):
                raise FieldError(join(path, "value"), f"must be empty with mode {mode}")
            return cls(mode)
        text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
        if not text.isdigit():
            what = "a whole number of targets" if mode == Mode.FIXED else "a whole percentage from 0 to 100"
            raise FieldError(join(path, "value"), f"{value!r} is not {what} (required with mode {mode})")
        number = int(text)
        if mode == Mode.FIXED and number < 1:
            raise FieldError(join(path, "value"), "must be at least 1 with mode fixed")
        if mode != Mode.FIXED and not (0 < number <= 100):
            raise FieldError(join(path, "value"), f"{number} is out of range: a percentage from 1 to 100")
        return cls(mode, number)

    def dump(self) -> dict[str, str]:
        out = {"mode": self.mode.value}
        if self.value is not None:
            out["value"] = str(self.value)
        return out


def select(candidates: Sequence[T], mode: ModeSpec, seed: int) -> list[T]:
    """The candidates `mode` picks, in their original order; the same seed picks the same ones."""
    rng = random.Random(seed)  # noqa: S311 (selection, not secrets)
    count = len(candidates)
    if count == 0:
        return []
    if mode.mode == Mode.ALL:
        wanted = count
    elif mode.mode == Mode.ONE:
        wanted = 1
    elif mode.mode == Mode.FIXED:
        wanted = min(mode.value or 0, count)
    elif mode.mode == Mode.FIXED_PERCENT:
        wanted = math.ceil(count * (mode.value or 0) / 100)
    else:  # random-max-percent: Chaos Mesh draws rand.Intn(value+1) then floors count*percent/100
        percent = rng.randint(0, mode.value or 0)
        wanted = math.floor(count * percent / 100)
    chosen = sorted(rng.sample(range(count), wanted))
    return [candidates[i] for i in chosen]
