"""Byteman rule scripts for JVM faults, made from validated fields only, and the listener's listing.

Every rule is named `chaosplane-<short id>-<what>`, so recovery finds and unloads exactly the rules of
one fault by name. Byteman's script format is line-based (RULE, CLASS, METHOD, AT, IF, DO, ENDRULE on
lines of their own) and the listener frames a script with ENDSCRIPT/ENDLOAD lines, so no generated
value may hold a line break or a control character: class and method names must be Java identifiers,
a return value a literal, an exception `new Class("message")`. A raw rule (ruleData) is the user's own
Byteman code by design; it is parsed like Byteman parses it, its rules are renamed after the fault id,
and lines that would end the listener's framing are refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nodeagent.orders import Refused

from . import jvm_helper, validate

MAX_LATENCY_MS = 3_600_000
MAX_RULE_DATA = 65536
MAX_RULES = 64

_ID = r"[A-Za-z_$][A-Za-z0-9_$]*"
_CLASS = re.compile(rf"{_ID}(\.{_ID})*")
_METHOD = re.compile(rf"{_ID}|<init>|<clinit>")
_JAVA_KEYWORDS = frozenset(
    "abstract assert boolean break byte case catch char class const continue default do double else enum extends "
    "final finally float for goto if implements import instanceof int interface long native new package private "
    "protected public return short static strictfp super switch synchronized this throw throws transient try void "
    "volatile while true false null".split())
# A Java string literal without escapes: no quote, no backslash, no control character.
_STRING = r'"[^"\\\x00-\x1f\x7f]*"'
_NUMBER = re.compile(r"-?(\d{1,19}|\d{1,30}\.\d{1,30}([eE][-+]?\d{1,3})?)")
_EXCEPTION = re.compile(rf"(?:new\s+)?(?P<cls>{_ID}(?:\.{_ID})*)\s*(?:\(\s*(?P<msg>{_STRING})?\s*\))?")
_FRAMING = ("ENDSCRIPT", "ENDLOAD", "ENDDELETE", "SCRIPT ")


def prefix(fault_id: str) -> str:
    """What every rule of this fault is named after."""
    return f"chaosplane-{validate.short_id(fault_id)}-"


def java_class(value: Any) -> str:
    name = validate.text(value, "class", 512)
    if not _CLASS.fullmatch(name) or any(part in _JAVA_KEYWORDS for part in name.split(".")):
        raise Refused(f"class: {name[:80]!r} is not a fully qualified Java class name (e.g. com.example.Main$Inner)")
    return name


def java_method(value: Any) -> str:
    name = validate.text(value, "method", 256)
    if not _METHOD.fullmatch(name) or name in _JAVA_KEYWORDS:
        raise Refused(f"method: {name[:80]!r} is not a Java method name (letters, digits, _ and $; or <init>)")
    return name


def return_value(value: Any) -> str:
    """A Java literal: a number, true, false, null or a "string" without quotes or backslashes inside."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        value = str(value)
    text = validate.text(value, "value", 1024).strip()
    if text in ("true", "false", "null") or _NUMBER.fullmatch(text) or re.fullmatch(_STRING, text):
        return text
    raise Refused(f'value: {text[:80]!r} is not a Java literal: give a number, true, false, null or a string in '
                  'double quotes (e.g. "chaos") without quotes or backslashes inside')


def exception(value: Any) -> str:
    """`new Class("message")` from `Class("message")`, `new Class()` or a bare class name."""
    text = validate.text(value, "exception", 1024).strip()
    match = _EXCEPTION.fullmatch(text)
    if not match:
        raise Refused(f'exception: {text[:80]!r} is not an exception such as java.io.IOException("BOOM") (a class '
                      "name and an optional message in double quotes, without quotes or backslashes inside)")
    cls = java_class(match.group("cls"))
    return f"new {cls}({match.group('msg') or ''})"


def latency_ms(value: Any) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) <= 10:
        value = int(value)
    return validate.integer(value, "latency (ms)", 1, MAX_LATENCY_MS)


def rule(name: str, cls: str, method: str, action: str, helper: str | None = None) -> str:
    lines = [f"RULE {name}", f"CLASS {cls}", f"METHOD {method}"]
    if helper:
        lines.append(f"HELPER {helper}")
    lines += ["AT ENTRY", "IF true", f"DO {action}", "ENDRULE"]
    return "\n".join(lines) + "\n"


def trigger_rule(name: str, action: str) -> str:
    """A rule fired by the helper's trigger thread (stress, GC)."""
    return rule(name, jvm_helper.TRIGGER_CLASS, jvm_helper.TRIGGER_METHOD, action, jvm_helper.HELPER_CLASS)


def rename_rule_data(text: Any, fault_id: str) -> tuple[str, list[str]]:
    """The user's RULE ... ENDRULE blocks with each rule renamed `chaosplane-<short>-rule-<n>`; refused
    unless it parses the way Byteman's ScriptRepository parses it."""
    raw = validate.text(text, "ruleData", MAX_RULE_DATA)
    raw = raw.replace("\r\n", "\n")
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", raw):
        raise Refused("ruleData: must not hold control characters (other than tabs and line breaks)")
    out: list[str] = []
    names: list[str] = []
    in_rule = seen_class = seen_method = False
    for number, original in enumerate(raw.split("\n"), 1):
        line = original.strip()
        where = f"ruleData line {number}"
        if any(line == marker or (marker.endswith(" ") and line.startswith(marker)) for marker in _FRAMING):
            raise Refused(f"{where}: {line[:40]!r} is not allowed in a rule")
        if not line or line.startswith("#"):
            continue
        if line.startswith("RULE ") or line == "RULE":
            if in_rule:
                raise Refused(f"{where}: RULE inside a rule (the previous one has no ENDRULE)")
            if not line[5:].strip():
                raise Refused(f"{where}: RULE without a name")
            in_rule, seen_class, seen_method = True, False, False
            names.append(f"{prefix(fault_id)}rule-{len(names) + 1}")
            out.append(f"RULE {names[-1]}")
            continue
        if not in_rule:
            if line.startswith(("HELPER ", "IMPORT ")):
                out.append(line)
                continue
            raise Refused(f"{where}: {line[:40]!r} outside RULE ... ENDRULE")
        if line.startswith("ENDRULE"):
            if not (seen_class and seen_method):
                raise Refused(f"{where}: the rule has no CLASS (or INTERFACE) and METHOD line")
            out.append("ENDRULE")
            in_rule = False
            continue
        if line.startswith(("CLASS ", "INTERFACE ")):
            seen_class = True
        elif line.startswith("METHOD "):
            seen_method = True
        out.append(line)
    if in_rule:
        raise Refused("ruleData: the last rule has no ENDRULE")
    if not names:
        raise Refused("ruleData: no rule in it (write RULE <name> ... ENDRULE)")
    if len(names) > MAX_RULES:
        raise Refused(f"ruleData: at most {MAX_RULES} rules")
    return "\n".join(out) + "\n", names


# The listener's LIST answer ----------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One loaded rule as the agent lists it: where it is injected and whether it compiled."""

    name: str
    text: str
    injected: int  # trigger methods it was injected into
    compiled: bool
    failure: str  # the type-check or compile error, if any


def parse_listing(answer: str) -> dict[str, Listed]:
    blocks: list[list[str]] = []
    for line in answer.splitlines():
        if line.startswith("# File ") or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    found = {}
    for block in blocks:
        name = next((line[5:].strip() for line in block if line.startswith("RULE ")), None)
        if name is None:
            continue
        text = "\n".join(block)
        tail = text.split("\nENDRULE", 1)[-1]
        failure = ""
        lines = tail.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("threw "):  # parsing or injecting failed (e.g. a syntax error)
                failure = " ".join(lines[i:i + 2])
                break
            if line.startswith("failed to "):  # type-checking or compiling failed at the first trigger
                errors = [x for x in lines[i + 1:] if "Exception" in x or "error" in x.lower()]
                failure = " ".join(errors[:2]) or line
                break
        failure = failure.strip()[:400]
        found[name] = Listed(name, text, tail.count("trigger method:"), "compiled successfully" in tail, failure)
    return found


def delete_script(names: list[str]) -> str:
    """A script that unloads rules by name: the agent finds loaded rules by name only."""
    return "".join(f"RULE {name}\nCLASS chaosplane.Unload\nMETHOD unload\nENDRULE\n" for name in names)
