"""HTTPChaos: abort, delay, replace or patch the HTTP requests or responses on one port of the
selected pods, through a proxy in their network namespace. Chaos Mesh has no `action` key: a spec
says what it does by which of abort, delay, replace and patch it gives (several may be combined;
the first of those four given names the action)."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from typing import Any

from .common import REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import (
    Bool,
    DurationType,
    Enum,
    Field,
    FieldError,
    Int,
    ListOf,
    MapOf,
    Obj,
    Str,
    describe,
    join,
    one_of_required,
)

METHOD = Enum(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))
STATUS = Int(minimum=100, maximum=599)
URI_PATH = Str(min_length=1, pattern=r"[/*]\S*", pattern_help="a URI path starting with / (or a glob such as /api/*)")
HEADERS = MapOf(Str())


class Base64(Str):
    """Chaos Mesh keeps the replacement body as []byte, which JSON and YAML carry in base64."""

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise FieldError(path, f"{describe(value)} is not base64 (encode the body, e.g. `base64 -w0`)") from None
        return text


class JsonText(Str):
    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        try:
            json.loads(text)
        except ValueError as error:
            raise FieldError(path, f"is not valid JSON ({error.msg} at character {error.pos})") from None
        return text


# [name, value]: a list of pairs, not a map, so a header or query may be added several times.
PAIRS = ListOf(ListOf(Str(), min_items=2, max_items=2))

REPLACE = Obj(
    (
        Field("path", URI_PATH, label="Path", help="New URI path (requests only)."),
        Field("method", METHOD, label="Method", help="New HTTP method (requests only)."),
        Field("code", STATUS, label="Status code", help="New status code (responses only)."),
        Field("body", Base64(), label="Body", help="New message body, base64-encoded."),
        Field("queries", HEADERS, label="Query parameters", help="Query parameters to set (requests only)."),
        Field("headers", HEADERS, label="Headers", help="Headers to set, name to value."),
    ),
    validators=(one_of_required("path", "method", "code", "body", "queries", "headers"),),
)

PATCH_BODY = Obj(
    (
        Field("type", Enum(("JSON",)), required=True, label="Type", help="JSON: a JSON merge patch (RFC 7396)."),
        Field("value", JsonText(min_length=1), required=True, label="Patch", help="The JSON merged into the body."),
    )
)

PATCH = Obj(
    (
        Field("body", PATCH_BODY, label="Body", help="Merge a JSON patch into the message body."),
        Field("queries", PAIRS, label="Query parameters",
              help="[name, value] pairs appended to the query (requests only)."),
        Field("headers", PAIRS, label="Headers", help="[name, value] pairs appended to the headers."),
    ),
    validators=(one_of_required("body", "queries", "headers"),),
)

SELECT = (
    Field("target", Enum(("Request", "Response")), required=True, label="Target",
          help="Request: act on requests to the port; Response: on the responses from it."),
    Field("port", Int(minimum=1, maximum=65535), required=True, label="Port",
          help="The port the selected pods serve HTTP on."),
    Field("path", URI_PATH, label="Path", help="Only URI paths matching this glob, e.g. /api/* (default: every path)."),
    Field("method", METHOD, label="Method", help="Only requests with this method (default: every method)."),
    Field("code", STATUS, label="Status code", help="Only responses with this status code (target Response)."),
    Field("request_headers", HEADERS, label="Request headers", help="Only requests with these header values."),
    Field("response_headers", HEADERS, label="Response headers",
          help="Only responses with these header values (target Response)."),
    REMOTE_CLUSTER,
)

ACTION_FIELDS = ("abort", "delay", "replace", "patch")


def _fields(required: str) -> tuple[Field, ...]:
    # Every action takes all four, since Chaos Mesh combines them; its own is the one required.
    specs = (
        Field("abort", Bool(), label="Abort", help="true: break the connection instead of answering."),
        Field("delay", DurationType(), label="Delay", help="Time added before passing it on, e.g. 1s."),
        Field("replace", REPLACE, label="Replace", help="Parts of the message to replace."),
        Field("patch", PATCH, label="Patch", help="Parts of the message to add to."),
    )
    return tuple(replace(s, required=s.name == required) for s in specs)


def _check_target(values: dict[str, Any], path: str) -> None:
    """A rule that only exists in the other direction would silently do nothing: refuse it. (`method`
    is fine with either: a response is matched by the method of its request.)"""
    response_only = (("code",), ("response_headers",), ("replace", "code"))
    request_only = (("replace", "path"), ("replace", "method"), ("replace", "queries"), ("patch", "queries"))
    wrong, other = (response_only, "Response") if values["target"] == "Request" else (request_only, "Request")
    for keys in wrong:
        holder = values.get(keys[0]) if len(keys) == 2 else values
        if isinstance(holder, dict) and keys[-1] in holder:
            raise FieldError(join(join(path, keys[0]), keys[1]) if len(keys) == 2 else join(path, keys[0]),
                             f"only applies with target {other}")


def infer_action(values: dict[str, Any]) -> str:
    for name in ACTION_FIELDS:
        given = values.get(name)
        if given is not None and given is not False:  # `abort: false` does not abort
            return name
    # Kind.parse gives no path to this hook; manifests are parsed at `spec`.
    raise FieldError("spec", "give at least one of: abort (true), delay, replace, patch")


def _action(name: str, label: str, help: str) -> Action:
    return Action(
        name=name,
        label=label,
        help=help,
        fields=_fields(name),
        targets=frozenset({Target.POD}),
        capability=Capability.HTTP_PROXY,
        validators=(_check_target,),
    )


KIND = Kind(
    name="HTTPChaos",
    label="HTTP fault",
    help="Abort, delay or rewrite the HTTP requests or responses of the selected pods on one port.",
    common_fields=SELECT,
    action_field=None,
    infer_action=infer_action,
    actions=(
        _action("abort", "Abort", "Break the connection of matching requests or responses."),
        _action("delay", "Delay", "Hold matching requests or responses for a while before passing them on."),
        _action("replace", "Replace", "Replace the path, method, status code, body, query or headers."),
        _action("patch", "Patch", "Merge JSON into the body, or append query parameters or headers."),
    ),
)
