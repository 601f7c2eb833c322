"""The workflow pages' forms: a workflow from YAML or from ordered steps, and starting a run."""
from __future__ import annotations

from typing import Any

import yaml
from django import forms
from django.core.exceptions import ValidationError

from injector import manifests
from injector.faults.params import FieldError, FieldErrors, flatten
from injector.manifests import DESCRIPTION_ANNOTATION, SERVER_METADATA, embed_key

from .. import services
from ..models import NAME_LENGTH, Experiment
from .schedules import check_name

#: The entry template of a workflow made step by step.
STEPS_ENTRY = "main"


def steps_spec(mode: str, steps: list[tuple[Experiment | None, str]]) -> dict[str, Any]:
    """A Workflow spec from ordered steps (an experiment, inlined as its chaos, or None for a suspend;
    and a deadline), under one Serial or Parallel entry."""
    used, templates = {STEPS_ENTRY}, []
    for index, (experiment, deadline) in enumerate(steps, start=1):
        base = experiment.name if experiment is not None else f"suspend-{index}"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base[:NAME_LENGTH - 6]}-{n}"
        used.add(name)
        template: dict[str, Any] = {"name": name, "templateType": "Suspend"}
        if experiment is not None:
            template = {"name": name, "templateType": experiment.kind,
                        embed_key(experiment.kind): services.experiment_definition(experiment).spec()}
        if deadline:
            template["deadline"] = deadline
        templates.append(template)
    entry = {"name": STEPS_ENTRY, "templateType": mode, "children": [t["name"] for t in templates]}
    return {"entry": STEPS_ENTRY, "templates": [entry, *templates]}


# Forms ---------------------------------------------------------------------------------------------


def by_field(error: ValidationError) -> dict[str, list[Any]]:
    """A service's ValidationError as {field: errors}; "" for one that names no field."""
    return error.error_dict if hasattr(error, "error_dict") else {"": error.error_list}


def dry_run_field() -> forms.TypedChoiceField:
    return forms.TypedChoiceField(required=False, coerce=lambda v: v == "true", empty_value=None, label="Dry run",
                                  help_text="A dry run selects each fault's targets and touches nothing.")


def dry_run_choices(policy_dry_run: bool) -> list[tuple[str, str]]:
    default = "dry run" if policy_dry_run else "real faults"
    return [("", f"The tenant's default (now: {default})"), ("true", "Dry run: touch nothing"),
            ("false", "Real faults")]


class YamlWorkflowForm(forms.Form):
    """A Chaos Mesh Workflow manifest, or only its spec (entry + templates) with a name."""

    name = forms.CharField(required=False, max_length=NAME_LENGTH, validators=[check_name],
                           help_text="Needed when you paste only a spec; otherwise it replaces metadata.name.")
    description = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    manifest = forms.CharField(
        label="YAML", widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "wf-code"}),
        help_text="A manifest with kind: Workflow, as kubectl would take it, or a spec with entry and templates.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "manifest" not in data:
            return data
        try:
            documents = [d for d in yaml.safe_load_all(data["manifest"]) if d is not None]
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            self.add_error("manifest", f"not valid YAML{where}: {getattr(error, 'problem', error)}")
            return data
        if len(documents) != 1 or not isinstance(documents[0], dict):
            self.add_error("manifest", "give one YAML document: a Workflow manifest, or a map with entry and templates")
            return data
        document = documents[0]
        meta: dict[str, Any] = {}
        if "kind" in document or "apiVersion" in document:
            if document.get("kind") != "Workflow":
                self.add_error("manifest", f"kind: {document.get('kind')!r} is not Workflow (this page makes "
                                           "workflows)")
                return data
            metadata = document.get("metadata") or {}
            if isinstance(metadata, dict):
                metadata = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
            if data.get("name") and isinstance(metadata, dict):
                metadata["name"] = data["name"]
            try:
                meta = manifests.METADATA.parse(metadata, "metadata")
            except (FieldError, FieldErrors) as error:
                for e in flatten(error):
                    self.add_error("manifest", f"{e.path}: {e.message}")
                return data
            spec = document.get("spec")
        else:
            spec = document
            if not data.get("name"):
                self.add_error("name", "is required when the YAML is only a spec (entry and templates)")
                return data
        description = data.get("description") or (meta.get("annotations") or {}).get(DESCRIPTION_ANNOTATION, "")
        self.service_data = {"name": data.get("name") or meta["name"], "namespace": meta.get("namespace", ""),
                             "labels": meta.get("labels", {}), "description": description, "spec": spec}
        return data

    def add_service_error(self, error: ValidationError) -> None:
        for key, errors in by_field(error).items():
            for message in ValidationError(errors).messages:
                if key == "name" and self.cleaned_data.get("name"):
                    self.add_error("name", message)
                else:
                    self.add_error("manifest", f"{'metadata.name' if key == 'name' else key}: {message}"
                                   if key else message)


class StepsWorkflowForm(forms.Form):
    name = forms.CharField(max_length=NAME_LENGTH, validators=[check_name],
                           help_text="Lowercase letters, digits, '-' and '.'. It cannot be changed later.")
    description = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    mode = forms.ChoiceField(
        label="The steps run", initial="Serial", widget=forms.RadioSelect,
        choices=[("Serial", "Serial: one after another, in this order"), ("Parallel", "Parallel: all at once")],
    )


class StepForm(forms.Form):
    kind = forms.ChoiceField(label="Step", initial="experiment",
                             choices=[("experiment", "Run an experiment"), ("suspend", "Suspend (wait)")])
    experiment = forms.ChoiceField(required=False)
    deadline = forms.CharField(
        required=False, max_length=40, label="Deadline or duration",
        widget=forms.TextInput(attrs={"placeholder": "e.g. 2m", "class": "wf-short"}),
        help_text="An experiment's step ends by then (its fault is recovered); a suspend waits this long.",
    )

    def __init__(self, *args: Any, experiments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["experiment"].choices = [("", "Choose an experiment"), *[(n, n) for n in experiments]]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("kind") == "experiment" and not data.get("experiment"):
            self.add_error("experiment", "Choose the experiment this step runs.")
        if data.get("kind") == "suspend" and not data.get("deadline"):
            self.add_error("deadline", "A suspend needs a duration, e.g. 30s.")
        return data


StepFormSet = forms.formset_factory(StepForm, extra=3)


class StartRunForm(forms.Form):
    environment = forms.ChoiceField(help_text="Where the workflow's faults land.")
    dry_run = dry_run_field()

    def __init__(self, *args: Any, environments: list[str], policy_dry_run: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].choices = [("", "Choose an environment"), *[(n, n) for n in environments]]
        self.fields["dry_run"].choices = dry_run_choices(policy_dry_run)
