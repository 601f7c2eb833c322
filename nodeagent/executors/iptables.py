"""iptables chains of one fault, in the calling thread's network namespace.

Each fault owns two chains, CHAOSPLANE-<short id>-I (jumped to from INPUT) and -O (from OUTPUT),
named from the fault id so recovery finds them from the order alone. Recovery removes the jumps and
the chains, and succeeds when there is nothing to remove.
"""
from __future__ import annotations

from .namespaces import CommandFailed, run

PREFIX = "CHAOSPLANE-"
HOOKS = {"I": "INPUT", "O": "OUTPUT"}
FAMILIES = {4: "iptables", 6: "ip6tables"}


def chain(short: str, hook: str) -> str:
    return f"{PREFIX}{short}-{hook}"  # 11 + 12 + 2 = 25 characters; iptables allows 28


def install(short: str, rules: list[tuple[int, str, list[str]]]) -> None:
    """rules: (family, hook I|O, match+target argv). Chains are filled before the jump is inserted, so
    the fault starts whole, not rule by rule."""
    for family in sorted({f for f, _, _ in rules}):
        binary = FAMILIES[family]
        for hook in sorted({h for f, h, _ in rules if f == family}):
            name = chain(short, hook)
            run([binary, "-w", "-N", name])
            for f, h, spec in rules:
                if f == family and h == hook:
                    run([binary, "-w", "-A", name, *spec])
            run([binary, "-w", "-I", HOOKS[hook], "1", "-j", name])


def remove(short: str) -> None:
    for binary in FAMILIES.values():
        for hook, parent in HOOKS.items():
            name = chain(short, hook)
            # A jump inserted twice (a retried injection) is removed as often as it is there.
            for _ in range(16):
                if run([binary, "-w", "-D", parent, "-j", name], check=False).returncode != 0:
                    break
            if run([binary, "-w", "-F", name], check=False).returncode == 0:
                run([binary, "-w", "-X", name], check=False)


def leftovers() -> list[str]:
    """Every CHAOSPLANE chain and jump in this namespace, in the filter and nat tables (the DNS and
    HTTP redirects live in nat), for tests and the agent's self-check."""
    found = []
    for binary in FAMILIES.values():
        for table in ("filter", "nat"):
            try:
                listing = run([binary, "-w", "-t", table, "-S"]).stdout
            except (CommandFailed, FileNotFoundError):
                continue
            found += [f"{binary} -t {table}: {line}" for line in listing.splitlines() if PREFIX in line]
    return found
