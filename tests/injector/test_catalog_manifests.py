"""Every kind and action of the catalogue, through Chaos Mesh manifests: each valid manifest imports,
exports and imports again to the same definition; each invalid one is refused at the right field.
The cases live in tests/injector/cases/<kind>.py (VALID manifests, INVALID (manifest, path, message))."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
import yaml

from injector import manifests
from injector.faults import KINDS
from injector.faults.params import FieldError

from . import cases

MODULES = [importlib.import_module(f"{cases.__name__}.{m.name}") for m in pkgutil.iter_modules(cases.__path__)]
VALID = [pytest.param(m.KIND, text, id=f"{m.KIND}-{i}") for m in MODULES for i, text in enumerate(m.VALID)]
INVALID = [
    pytest.param(m.KIND, text, path, message, id=f"{m.KIND}-{path}-{i}")
    for m in MODULES
    for i, (text, path, message) in enumerate(m.INVALID)
]


def intended_action(text: str) -> tuple[str, str] | None:
    """The (kind, action) an invalid manifest was written for, where it says (or implies) one."""
    document: Any = yaml.safe_load(text)
    kind = KINDS.get(document.get("kind"))
    spec = document.get("spec") or {}
    if kind is None:
        return None
    if kind.action_field:
        return (kind.name, spec.get(kind.action_field)) if spec.get(kind.action_field) in kind.by_action else None
    if kind.infer_action is None:
        return kind.name, kind.actions[0].name
    try:
        fault_fields = {k: v for k, v in spec.items() if k not in ("selector", "mode", "duration")}
        return kind.name, kind.infer_action(fault_fields)
    except FieldError:
        return None


def action_of(text: str) -> tuple[str, str]:
    (definition,) = manifests.parse(text)
    return definition.kind.name, definition.fault.action.name


@pytest.mark.parametrize("kind,text", VALID)
def test_a_valid_manifest_round_trips(kind: str, text: str) -> None:
    (definition,) = manifests.parse(text)
    assert definition.kind.name == kind

    exported = manifests.dump([definition])
    (again,) = manifests.parse(exported)

    assert again == definition
    assert manifests.dump([again]) == exported


@pytest.mark.parametrize("kind,text,path,message", INVALID)
def test_an_invalid_manifest_is_refused_at_the_field(kind: str, text: str, path: str, message: str) -> None:
    with pytest.raises(manifests.ManifestErrors) as caught:
        manifests.parse(text)
    found = [(e.document, e.path, e.message) for e in caught.value.errors]
    assert any(doc == 1 and p == path and message in m for doc, p, m in found), found


def test_every_kind_and_action_has_valid_and_invalid_cases() -> None:
    covered_valid = {action_of(text) for m in MODULES for text in m.VALID}
    covered_invalid = {a for m in MODULES for text, _, _ in m.INVALID if (a := intended_action(text))}
    every = {(k.name, a.name) for k in KINDS.values() for a in k.actions}
    assert every - covered_valid == set(), "actions without a valid manifest"
    assert every - covered_invalid == set(), "actions without an invalid manifest"


def test_the_catalogue_has_every_chaos_mesh_kind() -> None:
    assert set(KINDS) == {
        "PodChaos", "NetworkChaos", "DNSChaos", "HTTPChaos", "IOChaos", "StressChaos", "TimeChaos", "KernelChaos",
        "JVMChaos", "BlockChaos", "AWSChaos", "GCPChaos", "AzureChaos", "PhysicalMachineChaos",
    }


def test_the_catalogue_page_in_docs_matches_the_code() -> None:
    from pathlib import Path

    from injector.faults.__main__ import table

    page = (Path(__file__).resolve().parents[2] / "docs" / "catalogue.md").read_text()
    assert table() in page, "docs/catalogue.md is stale: regenerate its table with python -m injector.faults"
