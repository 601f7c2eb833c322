"""The experiment form of the portal, generated from the fault catalogue (injector.faults).

Every parameter of the chosen kind and action becomes one input, named by its path in the API's
experiment body (`params.delay.latency`, `selector.namespaces`), so that the ValidationErrors of
experiments.services, keyed the same way, land next to their inputs. A nested object is a fieldset.
The form reads the submitted text back into the API's JSON (numbers, lists, maps), and the catalogue
judges it: the portal and the API accept and refuse the same experiments.

The form is a tree of `Input` and `Group` nodes that the template experiment_field.html renders.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from injector.faults import KINDS, Kind, SelectorKind
from injector.faults.http import Base64, JsonText
from injector.faults.model import Action
from injector.faults.params import (
    MISSING,
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
    PercentType,
    RateType,
    SizeType,
    Str,
    Type,
    flatten,
)
from injector.manifests import METADATA, NAME, NAMESPACE
from injector.selection import HOST_SELECTOR, POD_SELECTOR, Mode

#: Parameters the form leaves out unless an experiment already has them: Chaos Mesh's webhook sets the
#: uid, and the deprecated address list cannot go with the selector that every experiment here has.
HIDDEN = {("PhysicalMachineChaos", "uid"), ("PhysicalMachineChaos", "address")}
#: Text that spans lines: a body, a JSON patch, a Byteman rule, data to write into a file.
LONG_TEXT_TYPES = (Base64, JsonText)
LONG_TEXT_FIELDS = {"ruleData"}
#: The selector fields shown first; the others are under "More selectors".
MAIN_SELECTORS = {SelectorKind.PODS: ("namespaces", "labelSelectors"),
                  SelectorKind.HOSTS: ("agents", "labelSelectors")}
MODE_HELP = {
    Mode.ONE: "one target, picked at random",
    Mode.ALL: "every target the selector matches",
    Mode.FIXED: "a fixed number of targets (the value), picked at random",
    Mode.FIXED_PERCENT: "a share of the targets (the value, in %), picked at random",
    Mode.RANDOM_MAX_PERCENT: "a random share of the targets, up to the value (in %)",
}
UNIT_HELP = {
    "duration": "A duration such as 100ms, 30s, 1m30s or 2h.",
    "size": "A size such as 256MB or 1GiB.",
    "size-or-percent": "A size such as 256MB or 1GiB, or a share such as 50%.",
    "rate": "A rate such as 1mbps (bytes per second) or 8mbit (bits per second).",
}
#: Experiment labels: what a manifest's metadata.labels accepts.
LABELS = METADATA.by_name["labels"].type
STATUS_CHECKS_EXAMPLE = """\
- name: shop-answers
  abort: true
  spec:
    type: HTTP
    mode: Continuous
    duration: 5m
    intervalSeconds: 5
    http:
      url: http://shop.internal/healthz
      criteria:
        statusCode: "200"
"""


@dataclass
class Input:
    """One input: `name` is its POST name and the key of its errors."""

    name: str
    label: str
    widget: str  # text, textarea, number, select, bool, lines, rows, yaml, checkboxes
    type: Type | None = None
    help: str = ""
    unit: str = ""
    required: bool = False
    placeholder: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    raw: Any = ""  # str; list[str] for checkboxes; list[(key, value)] for rows
    errors: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    extra_rows: int = 0  # empty rows asked for with "Add a row" (without the page's script)

    is_group = False

    @property
    def id(self) -> str:
        return "xp-" + self.name

    @property
    def rows(self) -> list[tuple[str, str]]:
        """The rows widget's rows: those given and one empty row to fill in."""
        return [*self.raw, *[("", "")] * (1 + self.extra_rows)]

    @property
    def has_value(self) -> bool:
        if self.widget == "rows":
            return any(k or v for k, v in self.raw)
        return bool(self.raw)


@dataclass
class Group:
    """A nested object: a fieldset (or, when optional, a fold that opens when it holds something)."""

    name: str
    label: str
    help: str = ""
    required: bool = False
    children: list[Input | Group] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Not a field of the catalogue: a fold that only gathers optional fields ("More options").
    virtual: bool = False

    is_group = True

    @property
    def id(self) -> str:
        return "xp-" + (self.name or self.label.lower().replace(" ", "-"))

    @property
    def has_value(self) -> bool:
        return any(child.has_value for child in self.children)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or any(
            child.has_errors if child.is_group else bool(child.errors) for child in self.children
        )

    @property
    def open(self) -> bool:
        return (self.required and not self.virtual) or self.has_value or self.has_errors

    def walk(self) -> Iterator[Input | Group]:
        yield self
        for child in self.children:
            if child.is_group:
                yield from child.walk()
            else:
                yield child


# Sources of values --------------------------------------------------------------------------------


class PostedValues:
    """What a submitted form holds, read the way each widget sends it."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, name: str, widget: str) -> Any:
        if widget == "checkboxes":
            return self.data.getlist(name) if hasattr(self.data, "getlist") else list(self.data.get(name) or [])
        if widget == "rows":
            keys = self.data.getlist(f"{name}:key") if hasattr(self.data, "getlist") else []
            values = self.data.getlist(f"{name}:value") if hasattr(self.data, "getlist") else []
            pairs = [(k.strip(), v.strip()) for k, v in zip(keys, values, strict=False)]
            return [(k, v) for k, v in pairs if k or v]
        value = self.data.get(name)
        return value.replace("\r\n", "\n") if isinstance(value, str) else value


class StoredValues:
    """An experiment's values (the API's JSON), shown as each widget writes them."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.flat: dict[str, Any] = {}
        self._flatten(data, "")

    def _flatten(self, value: Any, path: str) -> None:
        self.flat[path] = value
        if isinstance(value, dict):
            for key, item in value.items():
                self._flatten(item, f"{path}.{key}" if path else key)

    def get(self, name: str, widget: str) -> Any:
        if name not in self.flat:
            return None
        return as_text(self.flat[name], widget)


def as_text(value: Any, widget: str) -> Any:
    """A JSON value as its widget shows it."""
    if value is None:
        return [] if widget in ("checkboxes", "rows") else ""
    if widget == "checkboxes":
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if widget == "rows":
        return [(str(k), str(v)) for k, v in value.items()] if isinstance(value, dict) else []
    if widget == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if widget == "yaml":
        return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True).strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# From the catalogue to inputs ---------------------------------------------------------------------


def _scalar(t: Type) -> bool:
    return isinstance(t, (Str, Int, Float, Enum, Bool, DurationType, SizeType, RateType, PercentType))


def widget_for(spec: Field) -> str:
    t = spec.type
    if isinstance(t, Enum):
        return "select"
    if isinstance(t, Bool):
        return "bool"
    if isinstance(t, (Int, Float)):
        return "number"
    if isinstance(t, Str):
        long_text = isinstance(t, LONG_TEXT_TYPES) or (t.max_length or 0) > 1024 or spec.name in LONG_TEXT_FIELDS
        return "textarea" if long_text else "text"
    if isinstance(t, (DurationType, SizeType, RateType, PercentType)):
        return "text"
    if isinstance(t, ListOf) and isinstance(t.item, Enum):
        return "checkboxes"
    if isinstance(t, ListOf) and _scalar(t.item):
        return "lines"
    if isinstance(t, MapOf) and _scalar(t.value):
        return "rows"
    return "yaml"


def _default_text(default: Any) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, list):
        return ", ".join(str(v) for v in default)
    return str(default)


def _help(spec: Field, widget: str, required_with: str) -> str:
    parts = [spec.help] if spec.help else []
    t = spec.type
    fmt = t.schema().get("format") if isinstance(t, (DurationType, SizeType, RateType)) else None
    if fmt in UNIT_HELP and not any(c.isdigit() for c in spec.help):
        parts.append(UNIT_HELP[fmt])
    if widget == "lines" and "one per" not in spec.help.lower():
        parts.append("One per line.")
    elif widget == "yaml":
        parts.append("Written in YAML (or JSON).")
    if spec.default is not MISSING and widget not in ("select", "bool"):
        parts.append(f"Default: {_default_text(spec.default)}.")
    if required_with:
        parts.append(f"Required when {required_with} is used.")
    return " ".join(parts)


def input_for(spec: Field, name: str, required: bool, values: Any, required_with: str = "") -> Input:
    t = spec.type
    widget = widget_for(spec)
    node = Input(name=name, label=spec.label or spec.name, widget=widget, type=t, unit=spec.unit, required=required,
                 help=_help(spec, widget, required_with))
    if widget == "select":
        if spec.default is not MISSING:
            empty = f"Default ({_default_text(spec.default)})"
        else:
            empty = "Choose…" if required else "Not set"
        node.choices = [("", empty), *[(str(v), str(v)) for v in t.values]]
    elif widget == "bool":
        empty = f"Default ({_default_text(spec.default)})" if spec.default is not MISSING else "Not set"
        node.choices = [*([] if required else [("", empty)]), ("true", "Yes (true)"), ("false", "No (false)")]
    elif widget == "checkboxes":
        node.choices = [(str(v), str(v)) for v in t.item.values]
        if spec.default is not MISSING:
            node.help = (node.help + f" Default: {_default_text(spec.default)}.").strip()
    elif widget == "number":
        node.attrs = {k: v for k, v in (("min", getattr(t, "minimum", None)), ("max", getattr(t, "maximum", None)))
                      if v is not None}
        node.attrs["step"] = "any" if isinstance(t, Float) else 1
        if spec.default is not MISSING:
            node.placeholder = _default_text(spec.default)
    elif widget == "text":
        if isinstance(t, PercentType):
            node.unit = "%"
            node.attrs = {"inputmode": "decimal"}
        if spec.default is not MISSING:
            node.placeholder = _default_text(spec.default)
    raw = values.get(name, widget)
    node.raw = raw if raw is not None else ([] if widget in ("checkboxes", "rows") else "")
    return node


def group_for(obj: Obj, name: str, label: str, help: str, required: bool, values: Any, kind: Kind,
              top: bool = False, required_with: str = "") -> Group:
    """The fieldset of an object's fields: the required ones first (in the catalogue's order), then the
    optional ones; at the top of the parameters, the optional ones fold into "More options"."""
    group = Group(name=name, label=label, help=help, required=required)
    ordered = [f for f in obj.fields if f.required] + [f for f in obj.fields if not f.required]
    more = Group(name="", label="More options", virtual=True)
    for spec in ordered:
        child_name = f"{name}.{spec.name}"
        if (kind.name, spec.name) in HIDDEN and top and not values.get(child_name, "text"):
            continue
        # A field required inside an optional object is required only when that object is used.
        needs = "" if required else (required_with or label)
        if isinstance(spec.type, Obj):
            child: Input | Group = group_for(
                spec.type, child_name, spec.label or spec.name, spec.help, required and spec.required, values, kind,
                required_with=needs if spec.required else "",
            )
        else:
            child = input_for(spec, child_name, required and spec.required, values,
                              required_with=needs if spec.required else "")
        (more.children if top and not spec.required else group.children).append(child)
    if more.children:
        more.help = f"{len(more.children)} optional parameter{'s' if len(more.children) != 1 else ''}."
        group.children.append(more)
    return group


def selector_group(kind: Kind, values: Any) -> Group | None:
    """The selector builder: the main selectors, then "More selectors"; None for cloud kinds."""
    if kind.selector == SelectorKind.CLOUD:
        return None
    obj = HOST_SELECTOR if kind.selector == SelectorKind.HOSTS else POD_SELECTOR
    what = "hosts running the agent" if kind.selector == SelectorKind.HOSTS else "pods"
    group = Group(name="selector", label="Selector",
                  help=f"Which {what} are candidates; every rule given must match. Empty: every one.")
    main = MAIN_SELECTORS[kind.selector]
    more = Group(name="", label="More selectors", virtual=True)
    for spec in sorted(obj.fields, key=lambda f: main.index(f.name) if f.name in main else len(main)):
        name = f"selector.{spec.name}"
        node = (group_for(spec.type, name, spec.label, spec.help, False, values, kind) if isinstance(spec.type, Obj)
                else input_for(spec, name, False, values))
        if spec.name == "agents":
            node.help = "Agents by name (as on the environment's page). One per line."
        if spec.name == "labelSelectors" and kind.selector == SelectorKind.HOSTS:
            node.help = "Agent labels that must all match, e.g. tier = web."
        (group.children if spec.name in main else more.children).append(node)
    group.children.append(more)
    return group


# From inputs to the API's JSON --------------------------------------------------------------------


def _convert_scalar(t: Type, text: str) -> Any:
    """Form text as the JSON value the catalogue expects; text that is not one is passed on as it is, so
    that the catalogue says why ("'fast' is not a whole number")."""
    if isinstance(t, Int):
        stripped = text.strip()
        return int(stripped) if stripped.lstrip("-").isdigit() else stripped
    if isinstance(t, Float):
        try:
            return float(text)
        except ValueError:
            return text.strip()
    if isinstance(t, Enum):
        return {str(v): v for v in t.values}.get(text, text)
    if isinstance(t, Bool):
        return {"true": True, "false": False}.get(text, text)
    return text


def read_input(node: Input) -> tuple[Any, bool]:
    """(the JSON value, given?) of one input; conversion problems go to node.errors."""
    raw, t = node.raw, node.type
    if node.widget == "checkboxes":
        return ([_convert_scalar(t.item, v) for v in raw], True) if raw else (None, False)
    if node.widget == "rows":
        out: dict[str, Any] = {}
        for key, value in raw:
            if not key:
                node.errors.append(f"the row with value {value!r} needs a key")
            elif key in out:
                node.errors.append(f"{key!r} is given twice")
            else:
                out[key] = _convert_scalar(t.value, value) if isinstance(t, MapOf) else value
        return (out, True) if out else (None, False)
    if not isinstance(raw, str) or not raw.strip():
        return None, False
    if node.widget == "lines":
        items = [line.strip() for line in raw.split("\n") if line.strip()]
        return [_convert_scalar(t.item, v) for v in items], True
    if node.widget == "yaml":
        try:
            return yaml.safe_load(raw), True
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            node.errors.append(f"is not valid YAML{where}: {getattr(error, 'problem', error)}")
            return None, False
    if node.widget == "textarea":
        return raw, True
    return _convert_scalar(t, raw.strip()), True


def read_group(group: Group) -> dict[str, Any] | None:
    """An object's JSON: its given fields; None when nothing in it is given and it is optional."""
    out: dict[str, Any] = {}
    for child in group.children:
        if child.is_group and child.virtual:
            out.update(read_group(child) or {})
            continue
        value = read_group(child) if child.is_group else read_input(child)[0]
        if value is not None:
            out[child.name.rsplit(".", 1)[-1]] = value
    if not out and not group.required:
        return None
    return out


# The whole form -----------------------------------------------------------------------------------


def choose(kind_name: Any, action_name: Any) -> tuple[Kind, Action]:
    """The kind and action asked for: an unknown kind is the catalogue's first, and an action that is not
    the kind's (after switching kinds) is the kind's first."""
    kind = (KINDS.get(kind_name) if isinstance(kind_name, str) else None) or next(iter(KINDS.values()))
    action = kind.by_action.get(action_name) if isinstance(action_name, str) else None
    return kind, action or kind.actions[0]


class ExperimentForm:
    """The form for one kind and action, holding `values` (PostedValues or StoredValues)."""

    def __init__(self, values: Any, kind_name: Any, action_name: Any) -> None:
        self.kind, self.action = kind, action = choose(kind_name, action_name)
        self.values = values
        text = Str()
        self.name = input_for(Field("name", NAME, label="Name", help="Lowercase letters, digits, '-' and '.', as a "
                                    "Kubernetes object name; unique in the tenant."), "name", True, values)
        self.description = input_for(Field("description", Str(max_length=4000), label="Description",
                                           help="What it tests and what you expect to happen."),
                                     "description", False, values)
        self.labels = input_for(Field("labels", MapOf(Str(max_length=63)), label="Labels",
                                      help="Your own key = value labels, to find it in the list (label filter)."),
                                "labels", False, values)
        self.namespace = input_for(Field("namespace", NAMESPACE, label="Namespace",
                                         help="The Chaos Mesh namespace of the experiment: its selector's namespace "
                                         "when the selector names none."), "namespace", False, values)
        self.kind_input = Input(name="kind", label="Kind", widget="select", type=text, required=True, raw=kind.name,
                                help=kind.help,
                                choices=[(k.name, f"{k.label} ({k.name})") for k in KINDS.values()])
        targets = ", ".join(sorted(t.value for t in action.targets))
        facts = [action.help, f"Lands on: {targets}."]
        if action.capability:
            facts.append(f"Needs: {action.capability.value}.")
        if action.one_shot:
            facts.append("One-shot: done once, nothing to undo at recovery.")
        self.action_input = Input(name="action", label="Action", widget="select", type=text, required=True,
                                  raw=action.name, help=" ".join(facts),
                                  choices=[(a.name, f"{a.label} ({a.name})") for a in kind.actions])
        self.params = group_for(kind.params_type(action), "params", "Parameters", "", True, values, kind, top=True)
        for child in self.params.children:  # a host action's parameters sit under its own name: say it once
            if child.is_group and child.help == action.help:
                child.help = ""
        self.selector = selector_group(kind, values)
        self.mode = self.value = None
        if kind.selector != SelectorKind.CLOUD:
            self.mode = input_for(Field("mode", Enum(tuple(m.value for m in Mode)), label="Mode",
                                        help="How many of the candidates to pick."), "mode", True, values)
            self.mode.choices = [("", "Choose…")] + [(m.value, f"{m.value}: {MODE_HELP[m]}") for m in Mode]
            self.value = input_for(Field("value", Str(), label="Value",
                                         help="With fixed: how many targets. With fixed-percent and "
                                         "random-max-percent: a percentage from 1 to 100. Empty with one and all."),
                                   "value", False, values)
            self.value.widget, self.value.attrs = "text", {"inputmode": "numeric"}
            if not kind.mode_value_in_spec:
                self.value.disabled = True
                self.value.help = (f"{kind.name} keeps `value` for its own parameter (as in Chaos Mesh): use the "
                                   "modes one or all.")
        duration_help = ("How long the fault stays in, e.g. 30s, 5m or 1h30m. Empty: until it is stopped (the "
                         "tenant's limits still end it).")
        if action.one_shot:
            duration_help = "Not needed: this action is one-shot (done once, nothing to recover)."
        self.duration = input_for(Field("duration", DurationType(), label="Duration", help=duration_help),
                                  "duration", False, values)
        self.duration.placeholder = "30s"
        self.status_checks = input_for(
            Field("status_checks", ListOf(Obj(())), label="Steady-state checks",
                  help="Optional. A list of {name, spec (a Chaos Mesh StatusCheck spec), abort}: checked before "
                  "injecting (a failure refuses the run), while the faults are in (abort: true stops the run on "
                  "failure), and after."),
            "status_checks", False, values)

    # The inputs, by name, for placing errors.
    def nodes(self) -> dict[str, Input | Group]:
        out: dict[str, Input | Group] = {}
        for node in self.flat_nodes():
            if node.name:
                out[node.name] = node
        return out

    def flat_nodes(self) -> Iterator[Input | Group]:
        yield from (self.name, self.description, self.labels, self.namespace, self.kind_input, self.action_input)
        yield from self.params.walk()
        if self.selector is not None:
            yield from self.selector.walk()
        yield from (n for n in (self.mode, self.value, self.duration, self.status_checks) if n is not None)

    def data(self) -> dict[str, Any]:
        """The API's experiment body for what the form holds; conversion problems go to the inputs."""
        def value(node: Input | None, empty: Any = None) -> Any:
            if node is None or node.disabled:
                return empty
            got, given = read_input(node)
            return got if given else empty

        data: dict[str, Any] = {
            "name": value(self.name, ""),
            "description": value(self.description, ""),
            "namespace": value(self.namespace, ""),
            "labels": value(self.labels, {}),
            "kind": self.kind.name,
            "action": self.action.name,
            "params": read_group(self.params) or {},
            "selector": (read_group(self.selector) or {}) if self.selector is not None else None,
            "mode": value(self.mode, ""),
            "value": value(self.value, None),
            "duration": value(self.duration, ""),
            "status_checks": value(self.status_checks, []),
        }
        # The API's serializer demands a name and bounds the labels; the manifest needs a Kubernetes name.
        try:
            NAME.parse(data["name"], "name")
        except FieldError as error:
            self.name.errors.append("is required" if not data["name"] else error.message)
        try:
            LABELS.parse(data["labels"], "labels")
        except (FieldError, FieldErrors) as error:
            self.labels.errors.extend(f"{_where(e.path[len('labels.'):])}: {e.message}" for e in flatten(error))
        return data

    @property
    def has_errors(self) -> bool:
        return any(node.errors for node in self.flat_nodes())

    def add_errors(self, error: ValidationError | dict[str, Any]) -> list[str]:
        """Put each message next to the input its key names (or the nearest enclosing one); returns those
        that name no input, for the top of the form."""
        messages = error.message_dict if isinstance(error, ValidationError) and hasattr(error, "error_dict") else (
            error if isinstance(error, dict) else {"": error.messages})
        nodes, top = self.nodes(), []
        for key, texts in messages.items():
            texts = texts if isinstance(texts, list) else [texts]
            key = self._form_key(key)
            node, rest = _nearest(key, nodes)
            for text in texts:
                text = f"{_where(rest)}: {text}" if rest else str(text)
                if node is None:
                    top.append(f"{key}: {text}" if key else text)
                elif text not in node.errors:
                    node.errors.append(text)
        return top

    def _form_key(self, key: str) -> str:
        if key == "spec":  # the catalogue names no field: the parameters as a whole (HTTPChaos's action)
            return "params"
        if not self.kind.mode_value_in_spec and (key == "value" or key.startswith("value.")):
            return "params." + key  # JVMChaos: its `value` is the action's return value
        return key


def _parent(key: str) -> str:
    if key.endswith("]") and "[" in key:
        return key[: key.rindex("[")]
    return key.rsplit(".", 1)[0] if "." in key else ""


def _nearest(key: str, nodes: dict[str, Any]) -> tuple[Any, str]:
    """The input named `key`, or the nearest one enclosing it, with the part of the key below it."""
    current = key
    while current:
        if current in nodes:
            return nodes[current], key[len(current):].lstrip(".")
        current = _parent(current)
    return None, ""


def _where(rest: str) -> str:
    """`[0].spec.http.url` as "item 1: spec.http.url"; `app` as "app"."""
    if rest.startswith("["):
        index, _, after = rest[1:].partition("]")
        if index.isdigit():
            label = f"item {int(index) + 1}"
            after = after.lstrip(".")
            return f"{label}, {after}" if after else label
    return rest
