"""TimeChaos: shift the clocks the selected containers' processes read (by rewriting their vDSO
through ptrace). Chaos Mesh has no `action` key; the one action here is `time-offset`."""
from __future__ import annotations

from typing import Any

from .common import CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import DurationType, Enum, Field, FieldError, ListOf, join

CLOCKS = (
    "CLOCK_REALTIME",
    "CLOCK_MONOTONIC",
    "CLOCK_PROCESS_CPUTIME_ID",
    "CLOCK_THREAD_CPUTIME_ID",
    "CLOCK_MONOTONIC_RAW",
    "CLOCK_REALTIME_COARSE",
    "CLOCK_MONOTONIC_COARSE",
    "CLOCK_BOOTTIME",
    "CLOCK_REALTIME_ALARM",
    "CLOCK_BOOTTIME_ALARM",
)


def _not_zero(values: dict[str, Any], path: str) -> None:
    # Chaos Mesh accepts "0s", which injects and recovers without changing any clock.
    if values["timeOffset"].nanoseconds == 0:
        raise FieldError(join(path, "timeOffset"), "must not be zero (e.g. -10m or 2h)")


KIND = Kind(
    name="TimeChaos",
    label="Clock skew",
    help="Move the clocks seen by the processes of the selected containers forward or back.",
    common_fields=(CONTAINER_NAMES, REMOTE_CLUSTER),
    action_field=None,
    actions=(
        Action(
            name="time-offset",
            label="Time offset",
            help="Add an offset, forward or back, to the clocks the processes read.",
            fields=(
                Field("timeOffset", DurationType(minimum=None), required=True, label="Offset",
                      help="How far to move the clocks; negative goes back, e.g. -10m or 1h30m."),
                Field("clockIds", ListOf(Enum(CLOCKS), min_items=1, unique=True), default=["CLOCK_REALTIME"],
                      label="Clocks", help="The clocks to shift."),
            ),
            targets=frozenset({Target.CONTAINER}),
            capability=Capability.PTRACE_VDSO,
            validators=(_not_zero,),
        ),
    ),
)
