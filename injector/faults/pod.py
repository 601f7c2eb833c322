"""PodChaos: kill pods, make them fail, kill containers (Kubernetes API and the container runtime)."""
from __future__ import annotations

from .common import CONTAINER_NAME, CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import Field, Int, ListOf

KIND = Kind(
    name="PodChaos",
    label="Pod fault",
    help="Kill pods, keep them failing, or kill some of their containers.",
    common_fields=(REMOTE_CLUSTER,),
    actions=(
        Action(
            name="pod-kill",
            label="Kill pod",
            help="Delete the selected pods; their controller creates them again.",
            fields=(
                Field(
                    "gracePeriod",
                    Int(minimum=0),
                    default=0,
                    label="Grace period",
                    unit="s",
                    help="Seconds the pod gets to stop before it is killed (0: at once).",
                ),
                CONTAINER_NAMES,
            ),
            targets=frozenset({Target.POD}),
            capability=Capability.KUBERNETES_API,
            one_shot=True,
        ),
        Action(
            name="pod-failure",
            label="Pod failure",
            help="Replace the pods' container images with one that does nothing, so they stay unavailable "
            "for the duration; the images are put back at recovery.",
            fields=(CONTAINER_NAMES,),
            targets=frozenset({Target.POD}),
            capability=Capability.KUBERNETES_API,
        ),
        Action(
            name="container-kill",
            label="Kill container",
            help="Kill the named containers of the selected pods.",
            fields=(
                Field(
                    "containerNames",
                    ListOf(CONTAINER_NAME, min_items=1, unique=True),
                    required=True,
                    label="Containers",
                    help="The containers to kill in each selected pod.",
                ),
            ),
            targets=frozenset({Target.CONTAINER}),
            capability=Capability.CONTAINER_RUNTIME,
            one_shot=True,
        ),
    ),
)
