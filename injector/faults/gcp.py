"""GCPChaos: stop or reset a Compute Engine instance, or detach disks from it, through the GCP API.

The spec names the instance itself (no selector, no mode). Credentials are referenced by
`secretName`, never written in the manifest: an inline key is an unknown field and refused.
"""
from __future__ import annotations

from .common import REMOTE_CLUSTER, SECRET_NAME
from .model import Action, Capability, Kind, SelectorKind, Target
from .params import Field, ListOf, Str

#: Project IDs: 6-30 lowercase letters, digits and hyphens, starting with a letter; older
#: domain-scoped projects are written `example.com:my-project`.
PROJECT = Str(
    pattern=r"([a-z0-9][-a-z0-9.]{0,61}[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]",
    pattern_help="a GCP project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter",
)
ZONE = Str(pattern=r"[a-z]+-[a-z]+\d+-[a-z]", pattern_help="a GCP zone such as us-central1-a")
RESOURCE_NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
DEVICE_NAME = Str(
    pattern=r"[a-zA-Z0-9]([-_a-zA-Z0-9]{0,62})",
    pattern_help="a disk's device name (letters, digits, - and _, at most 63)",
)

COMMON = (
    SECRET_NAME,
    Field("project", PROJECT, required=True, label="Project", help="The ID of the GCP project."),
    Field("zone", ZONE, required=True, label="Zone", help="The zone of the instance, e.g. us-central1-a."),
    Field(
        "instance",
        Str(pattern=RESOURCE_NAME, pattern_help="an instance name (lowercase letters, digits and -, at most 63)"),
        required=True,
        label="Instance",
        help="The name of the Compute Engine instance.",
    ),
    REMOTE_CLUSTER,
)

INSTANCE = frozenset({Target.CLOUD_INSTANCE})

KIND = Kind(
    name="GCPChaos",
    label="GCP fault",
    help="Stop or reset a Compute Engine instance, or detach disks from it.",
    selector=SelectorKind.CLOUD,
    common_fields=COMMON,
    actions=(
        Action(
            name="node-stop",
            label="Stop instance",
            help="Stop the instance for the duration; it is started again at recovery.",
            fields=(),
            targets=INSTANCE,
            capability=Capability.GCP_API,
        ),
        Action(
            name="node-reset",
            label="Reset instance",
            help="Reset the instance once, like pressing its reset button.",
            fields=(),
            targets=INSTANCE,
            capability=Capability.GCP_API,
            one_shot=True,
        ),
        Action(
            name="disk-loss",
            label="Detach disks",
            help="Detach disks from the instance for the duration; they are attached again at recovery.",
            fields=(
                Field(
                    "deviceNames",
                    ListOf(DEVICE_NAME, min_items=1, unique=True),
                    required=True,
                    label="Disks",
                    help="The device names of the disks to detach.",
                ),
            ),
            targets=frozenset({Target.VOLUME}),
            capability=Capability.GCP_API,
        ),
    ),
)
