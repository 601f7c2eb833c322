"""StressChaos: load the CPU or fill the memory of the selected containers with stress-ng workers
running in their cgroups. Chaos Mesh has no `action` key; the one action here is `stress`."""
from __future__ import annotations

from .common import CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import Field, Int, ListOf, Obj, SizeType, Str, one_of_required

# stress-ng runs at most 8192 workers of a stressor.
WORKERS = Int(minimum=1, maximum=8192)
OPTIONS = ListOf(Str(min_length=1, pattern=r"-\S.*", pattern_help="a stress-ng option, e.g. --vm-hang 1"))

CPU = Obj(
    (
        Field("workers", WORKERS, required=True, label="Workers", help="stress-ng CPU workers to run (1-8192)."),
        Field("load", Int(minimum=0, maximum=100), label="Load", unit="%",
              help="Load of each worker on its CPU: 0 is idle, 100 is full (default: 100)."),
        Field("options", OPTIONS, label="Extra options", help="Further stress-ng options for the CPU stressor."),
    )
)

MEMORY = Obj(
    (
        Field("workers", WORKERS, required=True, label="Workers", help="stress-ng memory workers to run (1-8192)."),
        Field("size", SizeType(allow_percent=True), label="Size",
              help="Memory each worker takes, e.g. 256MB, 1GiB or 50% of the memory available "
              "(default: all that is available)."),
        Field("oomScoreAdj", Int(minimum=-1000, maximum=1000), label="OOM score adjustment",
              help="oom_score_adj of the workers: 1000 makes the kernel kill them first, -1000 never."),
        Field("options", OPTIONS, label="Extra options", help="Further stress-ng options for the memory stressor."),
    )
)

STRESSORS = Obj(
    (
        Field("cpu", CPU, label="CPU", help="Keep CPUs busy."),
        Field("memory", MEMORY, label="Memory", help="Take memory and keep touching it."),
    ),
    validators=(one_of_required("cpu", "memory"),),
)

KIND = Kind(
    name="StressChaos",
    label="CPU and memory stress",
    help="Load the CPU or take the memory of the selected containers.",
    common_fields=(CONTAINER_NAMES, REMOTE_CLUSTER),
    action_field=None,
    actions=(
        Action(
            name="stress",
            label="Stress",
            help="Run stress-ng workers in the containers' cgroups for the duration.",
            fields=(
                Field("stressors", STRESSORS, label="Stressors", help="CPU and memory stress to apply."),
                # Chaos Mesh uses it instead of `stressors` when both are given.
                Field("stressngStressors", Str(min_length=1, pattern=r"\s*-\S[\s\S]*",
                                               pattern_help="stress-ng options, e.g. --cpu 2 --cpu-load 50"),
                      label="stress-ng options",
                      help="Stressors written as stress-ng options; wins over Stressors when both are given."),
            ),
            targets=frozenset({Target.CONTAINER}),
            capability=Capability.STRESS_NG,
            validators=(one_of_required("stressors", "stressngStressors"),),
        ),
    ),
)
