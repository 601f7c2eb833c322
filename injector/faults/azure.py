"""AzureChaos: stop or restart a virtual machine, or detach a data disk from it, through the Azure API.

The spec names the VM itself (no selector, no mode). Credentials are referenced by `secretName`,
never written in the manifest: an inline key or client secret is an unknown field and refused.
"""
from __future__ import annotations

from .common import REMOTE_CLUSTER, SECRET_NAME
from .model import Action, Capability, Kind, SelectorKind, Target
from .params import Field, Int, Str

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

COMMON = (
    SECRET_NAME,
    Field(
        "subscriptionID",
        Str(pattern=UUID, pattern_help="a subscription ID (a UUID such as 0d8c0b2e-3d7b-4c4e-9e5f-1a2b3c4d5e6f)"),
        required=True,
        label="Subscription",
        help="The ID of the Azure subscription.",
    ),
    Field(
        "resourceGroupName",
        Str(
            max_length=90,
            pattern=r"[-\w.()]{0,89}[-\w()]",
            pattern_help="a resource group name (letters, digits, _ - . ( ), at most 90, not ending in a period)",
        ),
        required=True,
        label="Resource group",
        help="The resource group of the VM.",
    ),
    Field(
        "vmName",
        Str(
            max_length=64,
            pattern=r"[a-zA-Z0-9]([-a-zA-Z0-9._]{0,62}[a-zA-Z0-9_])?",
            pattern_help="a VM name (letters, digits, - . _, at most 64)",
        ),
        required=True,
        label="VM",
        help="The name of the virtual machine.",
    ),
    REMOTE_CLUSTER,
)

VM = frozenset({Target.CLOUD_INSTANCE})

KIND = Kind(
    name="AzureChaos",
    label="Azure fault",
    help="Stop or restart an Azure virtual machine, or detach a data disk from it.",
    selector=SelectorKind.CLOUD,
    common_fields=COMMON,
    actions=(
        Action(
            name="vm-stop",
            label="Stop VM",
            help="Power the VM off for the duration; it is started again at recovery.",
            fields=(),
            targets=VM,
            capability=Capability.AZURE_API,
        ),
        Action(
            name="vm-restart",
            label="Restart VM",
            help="Restart the VM once.",
            fields=(),
            targets=VM,
            capability=Capability.AZURE_API,
            one_shot=True,
        ),
        Action(
            name="disk-detach",
            label="Detach data disk",
            help="Detach a data disk from the VM for the duration; it is attached again at the same LUN at recovery.",
            fields=(
                Field(
                    "diskName",
                    Str(
                        max_length=80,
                        pattern=r"[a-zA-Z0-9]([-\w.]{0,78}\w)?",
                        pattern_help="a disk name (letters, digits, - . _, at most 80)",
                    ),
                    required=True,
                    label="Disk",
                    help="The name of the data disk.",
                ),
                Field(
                    "lun",
                    Int(minimum=0, maximum=63),
                    required=True,
                    label="LUN",
                    help="The logical unit number the disk is attached at (0-63).",
                ),
            ),
            targets=frozenset({Target.VOLUME}),
            capability=Capability.AZURE_API,
        ),
    ),
)
