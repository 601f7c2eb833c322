"""BlockChaos: delay the block I/O of a volume of the selected pods (device-mapper between the
volume and its device)."""
from __future__ import annotations

from .common import CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import DurationType, Field, Obj, PercentType, Str

VOLUME_NAME = Str(min_length=1, max_length=63, pattern=r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
                  pattern_help="a volume name of the pod (RFC 1123 label)")

DELAY = Obj(
    (
        Field("latency", DurationType(), required=True, label="Latency", help="Time added to each I/O request, "
              "e.g. 10ms."),
        # Chaos Mesh's defaults ("0ms", "0") are said in the help: a Field default would be a typed
        # Duration or Percent, which the JSON Schema cannot carry.
        Field("jitter", DurationType(), label="Jitter", help="Random variation of the latency (default 0ms)."),
        Field("correlation", PercentType(), label="Correlation", unit="%",
              help="How much each delay depends on the last, 0-100 (default 0)."),
    )
)

KIND = Kind(
    name="BlockChaos",
    label="Block I/O fault",
    help="Slow down the disk of a volume of the selected pods.",
    common_fields=(CONTAINER_NAMES, REMOTE_CLUSTER),
    actions=(
        Action(
            name="delay",
            label="Block delay",
            help="Delay every block I/O request to the volume.",
            fields=(
                Field("volumeName", VOLUME_NAME, required=True, label="Volume",
                      help="The volume of the pod, as named in its spec."),
                Field("delay", DELAY, required=True, label="Delay"),
            ),
            targets=frozenset({Target.VOLUME}),
            capability=Capability.DEVICE_MAPPER,
        ),
    ),
)
