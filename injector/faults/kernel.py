"""KernelChaos: make kernel allocations fail (slab, page or bio) for the selected pods' processes,
optionally only along a given call chain (bpfki, BPF kprobes; the agent uses the kernel's fail_function
and refuses call chains). Chaos Mesh has no `action`
key; the one action here is `fail-kern-request`."""
from __future__ import annotations

from .common import REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import Enum, Field, Int, ListOf, Obj, Str

C_IDENTIFIER = Str(min_length=1, max_length=128, pattern=r"[A-Za-z_][A-Za-z0-9_.]*",
                   pattern_help="a kernel function name, e.g. ext4_mount")

FRAME = Obj(
    (
        Field("funcname", C_IDENTIFIER, required=True, label="Function",
              help="A kernel function, as in /proc/kallsyms, e.g. ext4_mount."),
        Field("parameters", Str(min_length=1), label="Parameters",
              help="Its C parameters, for the predicate, e.g. struct dentry *parent, const struct qstr *name."),
        Field("predicate", Str(min_length=1), label="Predicate",
              help="A C condition on the parameters, e.g. STRNCMP(name->name, \"bananas\", 8)."),
    )
)

FAIL_KERN_REQUEST = Obj(
    (
        # Chaos Mesh's numbering (should_failslab, should_fail_alloc_page, should_fail_bio).
        Field("failtype", Enum((0, 1, 2)), required=True, label="What fails",
              help="0: slab allocation (kmalloc...), 1: page allocation, 2: block I/O (bio)."),
        Field("headers", ListOf(Str(min_length=1, pattern=r"[A-Za-z0-9_./-]+\.h", pattern_help="a header such "
                                    "as linux/mmzone.h"), unique=True),
              label="Headers", help="Kernel headers the predicates need, e.g. linux/mmzone.h."),
        Field("callchain", ListOf(FRAME), label="Call chain",
              help="Fail only under this chain of calls, outermost first (default: any call)."),
        Field("probability", Int(minimum=0, maximum=100), label="Probability", unit="%",
              help="Share of the matching allocations that fail."),
        Field("times", Int(minimum=0, maximum=2**32 - 1), label="Times", help="Most failures to inject."),
    )
)

KIND = Kind(
    name="KernelChaos",
    label="Kernel fault",
    help="Make kernel memory or block I/O allocations fail for the selected pods.",
    common_fields=(REMOTE_CLUSTER,),
    action_field=None,
    actions=(
        Action(
            name="fail-kern-request",
            label="Fail kernel allocations",
            help="Make slab, page or bio allocations fail, optionally only under a given call chain.",
            fields=(Field("failKernRequest", FAIL_KERN_REQUEST, required=True, label="Failure",
                          help="What fails, where and how often."),),
            # Chaos Mesh applies it to the processes of the selected pods.
            targets=frozenset({Target.POD}),
            # The agent arms the kernel's fail_function for the target's tasks (a call chain, which
            # would need BPF kprobes, is refused by the agent).
            capability=Capability.FAIL_FUNCTION,
        ),
    ),
)
