"""What the experiment form holds, judged without saving anything: its errors next to their inputs (by
the same services the API calls), its Chaos Mesh manifest, and the targets it would pick in an
environment, picked as a run picks them (experiments.runs._select), with a fixed seed."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.core.exceptions import ValidationError

from injector import manifests
from injector.drivers.base import DriverError
from injector.environments import compatibility_error, driver_for
from injector.manifests import DESCRIPTION_ANNOTATION, ExperimentDefinition
from injector.models import Environment
from injector.selection import Mode, select

from .. import services
from .experiment_form import ExperimentForm

#: The preview picks with this seed: the same form shows the same pick. A run draws its own seed.
PREVIEW_SEED = 0
PREVIEW_NAMES = 50


def check(form: ExperimentForm, data: dict[str, Any]) -> tuple[ExperimentDefinition | None, list[str]]:
    """Judge the form's body as the services do, without saving: (the definition, messages naming no input).
    Every message goes next to its input, the catalogue's as well as the form's own."""
    top: list[str] = []
    definition = None
    try:
        definition = services.build_definition({**data, "name": data["name"] or "unnamed"})
    except ValidationError as error:
        top += form.add_errors(error)
    try:
        services.status_checks(data["status_checks"])
    except ValidationError as error:
        top += form.add_errors(error)
    return definition, top


def manifest_of(definition: ExperimentDefinition, description: str) -> str:
    """The manifest of a definition, with its description as the export writes it."""
    annotations = {DESCRIPTION_ANNOTATION: description} if description else {}
    return manifests.dump([replace(definition, meta=replace(definition.meta, annotations=annotations))])


def manifest_answer(form: ExperimentForm) -> tuple[str, dict[str, list[str]]]:
    """(the manifest of what the form holds, "") or ("", its errors by input). The name may still be empty."""
    data = form.data()
    if not data["name"]:
        form.name.errors.clear()
    definition, top = check(form, data)
    if form.has_errors or top or definition is None:
        return "", errors_of(form, top)
    return manifest_of(definition, data["description"]), {}


def errors_of(form: ExperimentForm, top: list[str]) -> dict[str, list[str]]:
    out = {node.name: list(node.errors) for node in form.flat_nodes() if node.errors and node.name}
    if top:
        out[""] = top
    return out


def preview_targets(definition: ExperimentDefinition, environment: Environment) -> dict[str, Any]:
    """Which targets a run of `definition` would pick in `environment` (with the preview's seed), as a run's
    selection does (experiments.runs._select); a ValidationError naming the field otherwise."""
    problem = compatibility_error(environment, definition.kind)
    if problem:
        raise ValidationError({"environment": problem})
    try:
        driver = driver_for(environment)
        try:
            candidates = driver.candidates(definition.selector, definition.meta.namespace or "", definition.fault)
        finally:
            driver.close()
    except DriverError as error:
        raise ValidationError({"environment": f"{environment.name}: {error}"}) from None
    chosen = select(candidates, definition.mode, PREVIEW_SEED) if definition.mode is not None else list(candidates)
    return {
        "environment": environment.name,
        "candidates": len(candidates),
        "selected": len(chosen),
        "targets": [t.display for t in chosen[:PREVIEW_NAMES]],
        "more": max(len(chosen) - PREVIEW_NAMES, 0),
        "random": definition.mode is not None and definition.mode.mode != Mode.ALL,
    }
