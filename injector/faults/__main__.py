"""python -m injector.faults: the catalogue as a Markdown table (kind, action, targets, capability)."""
from __future__ import annotations

from . import KINDS


def table() -> str:
    rows = ["| kind | action | targets | agent capability | one-shot |", "|---|---|---|---|---|"]
    for kind in KINDS.values():
        for action in kind.actions:
            targets = ", ".join(sorted(t.value for t in action.targets))
            capability = action.capability.value if action.capability else "-"
            one_shot = "yes" if action.one_shot else ""
            rows.append(f"| {kind.name} | {action.name} | {targets} | {capability} | {one_shot} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
