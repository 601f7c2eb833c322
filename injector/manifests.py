"""Chaos Mesh manifests (`chaos-mesh.org/v1alpha1` YAML) in and out.

`parse(text)` reads one or many documents and returns a definition per document, or raises
`ManifestErrors` listing every problem with its document index and field path
(`document 1: spec.delay.latency: "abc" is not a duration`). `dump(definitions)` writes YAML that
parses back to equal definitions. Every chaos kind of the catalogue is accepted, and Schedule,
Workflow, StatusCheck and PhysicalMachine; any other kind is refused by name.

Pure Python: no Django. Server-filled metadata (uid, resourceVersion, ...) and `status` are
ignored, so `kubectl get -o yaml` output imports; anything else unknown is refused.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from injector import cron
from injector.faults import KINDS, FaultSpec, Kind, SelectorKind
from injector.faults.params import (
    Bool,
    DurationType,
    Enum,
    Field,
    FieldError,
    FieldErrors,
    Float,
    Int,
    ListOf,
    MapOf,
    Obj,
    Str,
    describe,
    flatten,
    join,
)
from injector.faults.units import Duration
from injector.selection import HOST_SELECTOR, POD_SELECTOR, ModeSpec

API_VERSION = "chaos-mesh.org/v1alpha1"
DESCRIPTION_ANNOTATION = "chaosplane.io/description"
OTHER_KINDS = ("Schedule", "Workflow", "StatusCheck", "PhysicalMachine")
#: Metadata the API server fills in; present in `kubectl get -o yaml`, meaningless on import.
SERVER_METADATA = frozenset(
    {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
     "deletionGracePeriodSeconds", "managedFields", "selfLink", "finalizers", "ownerReferences", "generateName"}
)
NAME = Str(
    min_length=1,
    max_length=253,
    pattern=r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?",
    pattern_help="lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
)
NAMESPACE = Str(min_length=1, max_length=63, pattern=r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
                pattern_help="a namespace name (RFC 1123 label)")
METADATA = Obj(
    (
        Field("name", NAME, required=True),
        Field("namespace", NAMESPACE),
        Field("labels", MapOf(Str(max_length=63))),
        Field("annotations", MapOf(Str())),
    )
)


class ManifestError(ValueError):
    def __init__(self, document: int, path: str, message: str) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"document {document}: {where}{message}")
        self.document, self.path, self.message = document, path, message

    def as_dict(self) -> dict[str, Any]:
        return {"document": self.document, "path": self.path, "message": self.message}


class ManifestErrors(ValueError):
    def __init__(self, errors: list[ManifestError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


# Definitions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return self.annotations.get(DESCRIPTION_ANNOTATION, "")

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class ExperimentDefinition:
    """One fault with its targets and duration: a chaos kind's manifest, or the chaos embedded in a
    Schedule or a Workflow node."""

    meta: Meta
    fault: FaultSpec
    selector: dict[str, Any] | None = None
    mode: ModeSpec | None = None
    duration: Duration | None = None

    type = "experiment"

    @property
    def kind(self) -> Kind:
        return self.fault.kind

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.kind.action_field:
            out[self.kind.action_field] = self.fault.action.name
        if self.mode is not None:
            out["mode"] = self.mode.mode.value
            if self.mode.value is not None:
                out["value"] = str(self.mode.value)
        if self.selector is not None:
            out["selector"] = _selector_type(self.kind).dump(self.selector)
        out.update(self.fault.dump())
        if self.duration is not None:
            out["duration"] = str(self.duration)
        return out

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": self.kind.name, "metadata": self.meta.dump(), "spec": self.spec()}


@dataclass(frozen=True)
class StatusCheckDefinition:
    meta: Meta
    spec_values: dict[str, Any]

    type = "statuscheck"

    def spec(self) -> dict[str, Any]:
        return STATUS_CHECK_SPEC.dump(self.spec_values)

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "StatusCheck", "metadata": self.meta.dump(), "spec": self.spec()}


@dataclass(frozen=True)
class WorkflowNode:
    name: str
    template_type: str
    deadline: Duration | None = None
    children: tuple[str, ...] = ()
    experiment: ExperimentDefinition | None = None
    schedule: ScheduleDefinition | None = None
    status_check: dict[str, Any] | None = None
    abort_with_status_check: bool = False

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "templateType": self.template_type}
        if self.deadline is not None:
            out["deadline"] = str(self.deadline)
        if self.children:
            out["children"] = list(self.children)
        if self.experiment is not None:
            out[embed_key(self.experiment.kind.name)] = self.experiment.spec()
        if self.schedule is not None:
            out["schedule"] = self.schedule.spec()
        if self.status_check is not None:
            out["statusCheck"] = STATUS_CHECK_SPEC.dump(self.status_check)
        if self.abort_with_status_check:
            out["abortWithStatusCheck"] = True
        return out


@dataclass(frozen=True)
class WorkflowDefinition:
    meta: Meta
    entry: str
    nodes: tuple[WorkflowNode, ...]

    type = "workflow"

    def spec(self) -> dict[str, Any]:
        return {"entry": self.entry, "templates": [n.dump() for n in self.nodes]}

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": self.meta.dump(), "spec": self.spec()}


@dataclass(frozen=True)
class ScheduleDefinition:
    meta: Meta
    schedule: str
    target_type: str  # a chaos kind or "Workflow"
    experiment: ExperimentDefinition | None = None
    workflow: WorkflowDefinition | None = None
    concurrency_policy: str = "Forbid"
    history_limit: int | None = None
    starting_deadline_seconds: int | None = None

    type = "schedule"

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schedule": self.schedule, "type": self.target_type}
        if self.concurrency_policy != "Forbid":
            out["concurrencyPolicy"] = self.concurrency_policy
        if self.history_limit is not None:
            out["historyLimit"] = self.history_limit
        if self.starting_deadline_seconds is not None:
            out["startingDeadlineSeconds"] = self.starting_deadline_seconds
        if self.experiment is not None:
            out[embed_key(self.experiment.kind.name)] = self.experiment.spec()
        if self.workflow is not None:
            out["workflow"] = self.workflow.spec()
        return out

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "Schedule", "metadata": self.meta.dump(), "spec": self.spec()}


@dataclass(frozen=True)
class PhysicalMachineDefinition:
    meta: Meta
    address: str

    type = "physicalmachine"

    def to_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION, "kind": "PhysicalMachine", "metadata": self.meta.dump(),
            "spec": {"address": self.address},
        }


Definition = (
    ExperimentDefinition | ScheduleDefinition | WorkflowDefinition | StatusCheckDefinition | PhysicalMachineDefinition
)


def embed_key(kind_name: str) -> str:
    """The key a chaos spec sits under in a Schedule or a Workflow node (Chaos Mesh's EmbedChaos)."""
    return "physicalmachineChaos" if kind_name == "PhysicalMachineChaos" else kind_name[0].lower() + kind_name[1:]


EMBED_KEYS = {embed_key(name): name for name in KINDS}


# Status checks (Chaos Mesh StatusCheckSpec) -----------------------------------------------------------
#
# Chaos Mesh's fields are kept as they are, so its manifests parse and dump unchanged. Chaosplane
# extends them: `statusCode` may list several codes and ranges ("200,204,300-399"), and a check may
# be of type Prometheus (`prometheus`: server, query, comparison, threshold) instead of HTTP.


_STATUS_CODE_PART = re.compile(r"([1-5]\d\d)(?:-([1-5]\d\d))?")
#: The comparisons a Prometheus check may make between each sample and its threshold.
COMPARISONS = (">", ">=", "<", "<=", "==", "!=")


def status_code_ranges(criteria: str) -> list[tuple[int, int]]:
    """The inclusive (first, last) code ranges of a `statusCode` criteria: "200", "200-399" or a comma
    list of both ("200,204,300-399"; spaces around the parts are allowed). Raises ValueError naming the
    first part that is neither a code (100-599) nor a range of codes; a backwards range is returned as
    it is (first > last) for the caller to refuse."""
    ranges = []
    for part in criteria.split(","):
        match = _STATUS_CODE_PART.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"{describe(part.strip())} is not a status code (100-599) or a range (\"300-399\")")
        first = int(match[1])
        ranges.append((first, int(match[2]) if match[2] else first))
    return ranges


@dataclass(frozen=True)
class StatusCodes(Str):
    """A `statusCode` criteria, each comma-separated part checked on its own (see status_code_ranges)."""

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        try:
            status_code_ranges(text)
        except ValueError as error:
            raise FieldError(path, f"{describe(text)}: {error}" if "," in text else str(error)) from None
        return text

    def schema(self) -> dict[str, Any]:
        part = r"\s*[1-5]\d\d(-[1-5]\d\d)?\s*"
        return {**super().schema(), "pattern": rf"^{part}(,{part})*$"}


@dataclass(frozen=True)
class FiniteNumber(Float):
    """A number that compares: NaN and the infinities are refused (NaN would not even equal itself)."""

    def parse(self, value: Any, path: str) -> float:
        number = super().parse(value, path)
        if number != number or number in (float("inf"), float("-inf")):
            raise FieldError(path, f"{describe(value)} is not a finite number")
        return number


CHECK_URL = Str(min_length=1, pattern=r"https?://[^\s]+", pattern_help="an http(s) URL")
STATUS_CODES = StatusCodes(min_length=1, max_length=200)
HTTP_CHECK = Obj(
    (
        Field("url", CHECK_URL, required=True),
        Field("method", Enum(("GET", "POST")), default="GET"),
        Field(
            "headers",
            MapOf(
                ListOf(Str(pattern=r"[^\r\n\x00]*", pattern_help="a header value on one line")),
                key=Str(min_length=1, pattern=r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", pattern_help="an HTTP header name"),
            ),
        ),
        Field("body", Str()),
        Field(
            "criteria",
            Obj(
                (
                    Field(
                        "statusCode", STATUS_CODES, required=True,
                        help='The codes that pass: "200", a range "200-399", or a list "200,204,300-399".',
                    ),
                )
            ),
            required=True,
        ),
    )
)
#: Chaosplane's extension: a PromQL instant query whose every sample must compare true to a threshold.
PROMETHEUS_CHECK = Obj(
    (
        Field("server", CHECK_URL, required=True, help="The Prometheus base URL; the check asks its /api/v1/query."),
        Field(
            "query",
            Str(min_length=1, max_length=2000, pattern=r"(?s).*\S.*", pattern_help="a PromQL query, not only spaces"),
            required=True,
            help="An instant PromQL query (a vector or a scalar).",
        ),
        Field("comparison", Enum(COMPARISONS), required=True, help="How every sample must compare to the threshold."),
        Field("threshold", FiniteNumber(), required=True),
    )
)


def _status_check_rules(values: dict[str, Any], path: str) -> None:
    errors: list[FieldError] = []
    if values.get("mode", "Synchronous") == "Continuous" and "duration" not in values:
        errors.append(FieldError(join(path, "duration"), "is required with mode Continuous"))
    check_type = values.get("type")
    for kind, key in (("HTTP", "http"), ("Prometheus", "prometheus")):
        if check_type == kind and key not in values:
            errors.append(FieldError(join(path, key), f"is required with type {kind}"))
        elif check_type != kind and key in values:
            errors.append(FieldError(join(path, key), f"is only allowed with type {kind} (this check is {check_type})"))
    codes = values.get("http", {}).get("criteria", {}).get("statusCode", "")
    for first, last in status_code_ranges(codes) if codes else []:
        if first > last:
            errors.append(
                FieldError(
                    join(path, "http.criteria.statusCode"),
                    f"{describe(codes)}: the range {first}-{last} runs backwards (write it {last}-{first})",
                )
            )
    if errors:
        raise FieldErrors(errors)


STATUS_CHECK_SPEC = Obj(
    (
        Field("mode", Enum(("Synchronous", "Continuous")), default="Synchronous"),
        Field("type", Enum(("HTTP", "Prometheus")), required=True),
        Field("duration", DurationType(minimum=Duration(1))),
        Field("timeoutSeconds", Int(minimum=1), default=1, unit="s"),
        Field("intervalSeconds", Int(minimum=1), default=10, unit="s"),
        Field("failureThreshold", Int(minimum=1), default=3),
        Field("successThreshold", Int(minimum=1), default=1),
        Field("recordsHistoryLimit", Int(minimum=1, maximum=1000), default=100),
        Field("http", HTTP_CHECK),
        Field("prometheus", PROMETHEUS_CHECK),
    ),
    validators=(_status_check_rules,),
)


# Parsing -------------------------------------------------------------------------------------------


def parse(text: str) -> list[Definition]:
    """Every document of `text`, all or nothing: any error raises ManifestErrors listing them all."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", error)
        raise ManifestErrors([ManifestError(0, "", f"not valid YAML{where}: {problem}")]) from None
    if not documents:
        raise ManifestErrors([ManifestError(0, "", "no documents: the manifest is empty")])
    definitions: list[Definition] = []
    errors: list[ManifestError] = []
    for index, document in enumerate(documents, start=1):
        try:
            definitions.append(parse_document(document))
        except (FieldError, FieldErrors) as error:
            errors.extend(ManifestError(index, e.path, e.message) for e in flatten(error))
    names = [(d.to_manifest()["kind"], d.meta.namespace, d.meta.name) for d in definitions]
    for index, key in enumerate(names, start=1):
        if names.index(key) != index - 1:
            errors.append(ManifestError(index, "metadata.name", f"{key[2]!r} is already defined in this manifest"))
    if errors:
        raise ManifestErrors(errors)
    return definitions


def parse_document(document: Any) -> Definition:
    if not isinstance(document, dict):
        raise FieldError("", f"{describe(document)} is not a manifest (a map with apiVersion, kind, metadata, spec)")
    unknown = set(document) - {"apiVersion", "kind", "metadata", "spec", "status"}
    if unknown:
        raise FieldErrors([FieldError(key, "unknown field") for key in sorted(unknown)])
    if document.get("apiVersion") != API_VERSION:
        raise FieldError("apiVersion", f"{describe(document.get('apiVersion'))} is not {API_VERSION}")
    kind_name = document.get("kind")
    if kind_name not in KINDS and kind_name not in OTHER_KINDS:
        known = ", ".join([*KINDS, *OTHER_KINDS])
        raise FieldError("kind", f"{describe(kind_name)} is not a Chaos Mesh kind Chaosplane knows (one of: {known})")
    metadata = document.get("metadata")
    if isinstance(metadata, dict):
        metadata = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
    meta_values = METADATA.parse(metadata, "metadata")
    meta = Meta(
        meta_values["name"], meta_values.get("namespace"), meta_values.get("labels", {}),
        meta_values.get("annotations", {}),
    )
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise FieldError("spec", "is required: a map")
    if kind_name in KINDS:
        return parse_chaos(KINDS[kind_name], meta, spec, "spec")
    if kind_name == "Schedule":
        return parse_schedule(meta, spec, "spec")
    if kind_name == "Workflow":
        return parse_workflow(meta, spec, "spec")
    if kind_name == "StatusCheck":
        return StatusCheckDefinition(meta, STATUS_CHECK_SPEC.parse(spec, "spec"))
    values = Obj((Field("address", Str(pattern=r"https?://[^\s]+", pattern_help="an http(s) URL"), required=True),))
    return PhysicalMachineDefinition(meta, values.parse(spec, "spec")["address"])


def _selector_type(kind: Kind) -> Obj:
    return HOST_SELECTOR if kind.selector == SelectorKind.HOSTS else POD_SELECTOR


def parse_chaos(kind: Kind, meta: Meta, spec: dict[str, Any], path: str) -> ExperimentDefinition:
    """A chaos kind's spec: selector, mode and duration here; the rest is the fault's."""
    values = dict(spec)
    errors: list[FieldError] = []
    selector = mode = duration = None
    raw_duration = values.pop("duration", None)
    if raw_duration is not None:
        try:
            duration = DurationType(minimum=Duration(1)).parse(raw_duration, join(path, "duration"))
        except FieldError as error:
            errors.append(error)
    if kind.selector != SelectorKind.CLOUD:
        raw_selector, raw_mode = values.pop("selector", None), values.pop("mode", None)
        raw_value = values.pop("value", None) if kind.mode_value_in_spec else None
        by_address = kind.selector == SelectorKind.HOSTS and values.get("address") is not None
        try:
            if by_address and raw_selector is not None:
                raise FieldError(join(path, "address"), "give either address or selector, not both (as Chaos Mesh)")
            if raw_selector is None and not by_address:
                raise FieldError(join(path, "selector"), "is required (an empty map selects everything)")
            if raw_selector is not None:  # the deprecated address list names the hosts instead
                selector = _selector_type(kind).parse(raw_selector, join(path, "selector"))
        except (FieldError, FieldErrors) as error:
            errors.extend(flatten(error))
        try:
            mode = ModeSpec.parse(raw_mode, raw_value, path)
        except FieldError as error:
            if not kind.mode_value_in_spec and error.path == join(path, "value"):
                error = FieldError(
                    join(path, "mode"),
                    f"{kind.name} cannot use mode {raw_mode}: its `value` is the action's own (as in Chaos Mesh), "
                    "so use one or all",
                )
            errors.append(error)
    try:
        fault = kind.parse(values, path)
    except (FieldError, FieldErrors) as error:
        errors.extend(flatten(error))
    if errors:
        raise FieldErrors(errors)
    return ExperimentDefinition(meta, fault, selector, mode, duration)


def _embedded_chaos(spec: dict[str, Any], path: str, expected_kind: str | None) -> tuple[dict[str, Any], Any]:
    """Split off the one embedded chaos spec (`networkChaos: {...}`) of a Schedule or Workflow node."""
    present = [key for key in spec if key in EMBED_KEYS]
    if len(present) > 1:
        raise FieldError(join(path, present[1]), f"only one embedded chaos is allowed (also {present[0]})")
    if expected_kind is not None:
        key = embed_key(expected_kind)
        if present and present[0] != key:
            raise FieldError(join(path, present[0]), f"does not match the type {expected_kind} (expected {key})")
        if not present:
            raise FieldError(join(path, key), f"is required for type {expected_kind}")
    rest = {k: v for k, v in spec.items() if k not in EMBED_KEYS}
    return rest, (present[0], spec[present[0]]) if present else None


CRON = Str(
    min_length=1,
    max_length=200,
    pattern=r"(@(yearly|annually|monthly|weekly|daily|midnight|hourly))|(@every\s+\S+)|((\S+\s+){4,5}\S+)",
    pattern_help='a cron expression with 5 or 6 fields, @hourly and friends, or "@every 30s"',
)
SCHEDULE_FIELDS = Obj(
    (
        Field("schedule", CRON, required=True),
        Field("type", Str(min_length=1), required=True),
        Field("concurrencyPolicy", Enum(("Forbid", "Allow")), default="Forbid"),
        Field("historyLimit", Int(minimum=1)),
        Field("startingDeadlineSeconds", Int(minimum=0)),
    )
)


def parse_schedule(meta: Meta, spec: dict[str, Any], path: str) -> ScheduleDefinition:
    target_type = spec.get("type")
    if target_type != "Workflow" and target_type not in KINDS:
        raise FieldError(join(path, "type"), f"{describe(target_type)} is not a chaos kind or Workflow")
    if target_type == "Workflow":
        rest = {k: v for k, v in spec.items() if k != "workflow"}
        if any(k in EMBED_KEYS for k in rest):
            raise FieldError(join(path, next(k for k in rest if k in EMBED_KEYS)), "type Workflow takes no chaos")
        raw_workflow, embedded = spec.get("workflow"), None
        if not isinstance(raw_workflow, dict):
            raise FieldError(join(path, "workflow"), "is required for type Workflow")
    else:
        rest, embedded = _embedded_chaos(spec, path, target_type)
        raw_workflow = rest.pop("workflow", None)
        if raw_workflow is not None:
            raise FieldError(join(path, "workflow"), f"is only for type Workflow, not {target_type}")
    values = SCHEDULE_FIELDS.parse(rest, path)
    _check_cron(values["schedule"], join(path, "schedule"))
    experiment = workflow = None
    if embedded is not None:
        key, raw = embedded
        if not isinstance(raw, dict):
            raise FieldError(join(path, key), "is not a map")
        experiment = parse_chaos(KINDS[EMBED_KEYS[key]], meta, raw, join(path, key))
    else:
        workflow = parse_workflow(meta, raw_workflow, join(path, "workflow"))
    return ScheduleDefinition(
        meta, values["schedule"], target_type, experiment, workflow, values.get("concurrencyPolicy", "Forbid"),
        values.get("historyLimit"), values.get("startingDeadlineSeconds"),
    )


def _check_cron(expression: str, path: str) -> None:
    """The schedule must parse as Chaos Mesh's cron parser would take it (injector.cron)."""
    try:
        cron.parse(expression)
    except cron.CronError as error:
        raise FieldError(path, str(error)) from None


TEMPLATE_TYPES = ("Serial", "Parallel", "Suspend", "Schedule", "StatusCheck", "Task")
NODE_FIELDS = Obj(
    (
        Field("name", NAME, required=True),
        Field("templateType", Str(min_length=1), required=True),
        Field("deadline", DurationType(minimum=Duration(1))),
        Field("children", ListOf(NAME, unique=True)),
        Field("abortWithStatusCheck", Bool()),
    )
)


def parse_workflow(meta: Meta, spec: Any, path: str) -> WorkflowDefinition:
    if not isinstance(spec, dict):
        raise FieldError(path, "is not a map with entry and templates")
    unknown = set(spec) - {"entry", "templates"}
    if unknown:
        raise FieldErrors([FieldError(join(path, k), "unknown field (known here: entry, templates)") for k in unknown])
    entry = NAME.parse(spec.get("entry"), join(path, "entry")) if spec.get("entry") is not None else None
    if entry is None:
        raise FieldError(join(path, "entry"), "is required: the name of the first template")
    templates = spec.get("templates")
    if not isinstance(templates, list) or not templates:
        raise FieldError(join(path, "templates"), "is required: a non-empty list")
    nodes, errors = [], []
    for index, raw in enumerate(templates):
        try:
            nodes.append(_parse_node(meta, raw, join(join(path, "templates"), index)))
        except (FieldError, FieldErrors) as error:
            errors.extend(flatten(error))
    if errors:
        raise FieldErrors(errors)
    _check_tree(entry, nodes, path)
    return WorkflowDefinition(meta, entry, tuple(nodes))


def _parse_node(meta: Meta, raw: Any, path: str) -> WorkflowNode:
    if not isinstance(raw, dict):
        raise FieldError(path, "is not a map")
    kind_name = raw.get("templateType")
    if kind_name == "Task":
        raise FieldError(join(path, "templateType"), "Task templates (containers that pick branches) are not supported")
    if kind_name not in TEMPLATE_TYPES and kind_name not in KINDS:
        choices = ", ".join([t for t in TEMPLATE_TYPES if t != "Task"] + list(KINDS))
        raise FieldError(join(path, "templateType"), f"{describe(kind_name)} is not one of: {choices}")
    rest, embedded = _embedded_chaos(raw, path, kind_name if kind_name in KINDS else None)
    raw_schedule, raw_check = rest.pop("schedule", None), rest.pop("statusCheck", None)
    values = NODE_FIELDS.parse(rest, path)
    experiment = schedule = check = None
    if embedded is not None:
        key, spec = embedded
        if kind_name not in KINDS:
            raise FieldError(join(path, key), f"a {kind_name} template takes no chaos")
        if not isinstance(spec, dict):
            raise FieldError(join(path, key), "is not a map")
        experiment = parse_chaos(KINDS[kind_name], Meta(values["name"], meta.namespace), spec, join(path, key))
    if kind_name == "Schedule":
        if not isinstance(raw_schedule, dict):
            raise FieldError(join(path, "schedule"), "is required for a Schedule template")
        schedule = parse_schedule(Meta(values["name"], meta.namespace), raw_schedule, join(path, "schedule"))
    elif raw_schedule is not None:
        raise FieldError(join(path, "schedule"), "is only for Schedule templates")
    if kind_name == "StatusCheck":
        if raw_check is None:
            raise FieldError(join(path, "statusCheck"), "is required for a StatusCheck template")
        check = STATUS_CHECK_SPEC.parse(raw_check, join(path, "statusCheck"))
    elif raw_check is not None:
        raise FieldError(join(path, "statusCheck"), "is only for StatusCheck templates")
    if kind_name == "Suspend" and "deadline" not in values:
        raise FieldError(join(path, "deadline"), "is required for a Suspend template (how long to wait)")
    if values.get("children") and kind_name not in ("Serial", "Parallel"):
        raise FieldError(join(path, "children"), f"only Serial and Parallel templates have children, not {kind_name}")
    if values.get("abortWithStatusCheck") and kind_name != "StatusCheck":
        raise FieldError(join(path, "abortWithStatusCheck"), "is only for StatusCheck templates")
    return WorkflowNode(
        values["name"], kind_name, values.get("deadline"), tuple(values.get("children", ())), experiment, schedule,
        check, values.get("abortWithStatusCheck", False),
    )


def _check_tree(entry: str, nodes: Iterable[WorkflowNode], path: str) -> None:
    """Names unique, children and entry known, and no template its own ancestor."""
    by_name: dict[str, WorkflowNode] = {}
    templates = join(path, "templates")
    for index, node in enumerate(nodes):
        if node.name in by_name:
            raise FieldError(join(join(templates, index), "name"), f"{node.name!r} is used by two templates")
        by_name[node.name] = node
    if entry not in by_name:
        raise FieldError(join(path, "entry"), f"{entry!r} names no template")
    for index, node in enumerate(nodes):
        for child in node.children:
            if child not in by_name:
                raise FieldError(join(join(templates, index), "children"), f"{child!r} names no template")

    def visit(name: str, ancestors: tuple[str, ...]) -> None:
        if name in ancestors:
            raise FieldError(templates, f"the templates loop: {' -> '.join((*ancestors, name))}")
        for child in by_name[name].children:
            visit(child, (*ancestors, name))

    visit(entry, ())


# Writing -------------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(definitions: Iterable[Definition]) -> str:
    """YAML documents that `parse` reads back to equal definitions."""
    return yaml.dump_all(
        [d.to_manifest() for d in definitions], Dumper=_Dumper, sort_keys=False, default_flow_style=False,
        allow_unicode=True, explicit_start=True,
    )
