"""The StatusCheck spec: Chaos Mesh's fields as they are, and Chaosplane's extensions (a list of status
codes, and Prometheus checks). Valid specs round-trip through the manifest; each invalid field is
refused at its path, with its reason."""
from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from injector import manifests
from injector.faults.params import FieldError, FieldErrors, flatten
from injector.manifests import STATUS_CHECK_SPEC, ManifestErrors, StatusCheckDefinition

HTTP_SPEC: dict[str, Any] = {
    "mode": "Continuous",
    "type": "HTTP",
    "duration": "30s",
    "timeoutSeconds": 2,
    "intervalSeconds": 5,
    "failureThreshold": 4,
    "successThreshold": 2,
    "recordsHistoryLimit": 50,
    "http": {
        "url": "http://shop.example:8080/health?deep=1",
        "method": "POST",
        "headers": {"Content-Type": ["application/json"], "X-Probe": ["a", "b"]},
        "body": '{"ping": true}',
        "criteria": {"statusCode": "200-399"},
    },
}
PROMETHEUS_SPEC: dict[str, Any] = {
    "type": "Prometheus",
    "prometheus": {
        "server": "https://prometheus.monitoring.svc:9090/prom",
        "query": 'sum(rate(http_requests_total{job="shop", code=~"5.."}[1m]))',
        "comparison": "<",
        "threshold": 0.5,
    },
}


def manifest(spec: dict[str, Any]) -> str:
    document = {"apiVersion": manifests.API_VERSION, "kind": "StatusCheck", "metadata": {"name": "c"}, "spec": spec}
    return yaml.safe_dump(document, sort_keys=False)


def errors_of(spec: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises((FieldError, FieldErrors)) as caught:
        STATUS_CHECK_SPEC.parse(spec, "spec")
    return [(e.path, e.message) for e in flatten(caught.value)]


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (or removed when value is ...)."""
    spec = copy.deepcopy(base)
    *parents, last = path.split(".")
    here = spec
    for key in parents:
        here = here[key]
    if value is ...:
        del here[last]
    else:
        here[last] = value
    return spec


# Valid specs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [HTTP_SPEC, PROMETHEUS_SPEC], ids=["http", "prometheus"])
def test_a_valid_spec_round_trips_through_a_manifest(spec: dict[str, Any]) -> None:
    (definition,) = manifests.parse(manifest(spec))
    assert isinstance(definition, StatusCheckDefinition)
    assert definition.spec() == spec
    assert manifests.parse(manifests.dump([definition])) == [definition]


def test_a_chaos_mesh_check_parses_as_it_always_did() -> None:
    text = """
apiVersion: chaos-mesh.org/v1alpha1
kind: StatusCheck
metadata: {name: shop-up, namespace: shop}
spec:
  mode: Synchronous
  type: HTTP
  successThreshold: 1
  http: {url: "http://123.123.123.123", method: GET, criteria: {statusCode: "200"}}
"""
    (definition,) = manifests.parse(text)
    assert definition.spec_values == {
        "mode": "Synchronous", "type": "HTTP", "successThreshold": 1,
        "http": {"url": "http://123.123.123.123", "method": "GET", "criteria": {"statusCode": "200"}},
    }
    assert manifests.parse(manifests.dump([definition])) == [definition]


@pytest.mark.parametrize("codes", ["200", "200-399", "200,204,300-399", "200, 204", "100-599"])
def test_status_codes_may_be_a_code_a_range_or_a_list_of_both(codes: str) -> None:
    spec = changed(HTTP_SPEC, "http.criteria.statusCode", codes)
    assert STATUS_CHECK_SPEC.parse(spec, "spec")["http"]["criteria"]["statusCode"] == codes


@pytest.mark.parametrize("threshold", [0, -3, 99.5, 1e-9])
def test_a_threshold_is_any_finite_number(threshold: float) -> None:
    spec = changed(PROMETHEUS_SPEC, "prometheus.threshold", threshold)
    assert STATUS_CHECK_SPEC.parse(spec, "spec")["prometheus"]["threshold"] == threshold


def test_a_prometheus_check_round_trips_inside_a_workflow() -> None:
    check = yaml.safe_dump(PROMETHEUS_SPEC, default_flow_style=True, width=10_000).strip()
    text = f"""
apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata: {{name: w}}
spec:
  entry: main
  templates:
    - {{name: main, templateType: Serial, children: [check]}}
    - {{name: check, templateType: StatusCheck, deadline: 20s, abortWithStatusCheck: true, statusCheck: {check}}}
"""
    (definition,) = manifests.parse(text)
    assert definition.nodes[1].status_check == PROMETHEUS_SPEC
    assert manifests.parse(manifests.dump([definition])) == [definition]


# Invalid specs -----------------------------------------------------------------------------------

NOT_A_CODE = 'is not a status code (100-599) or a range ("300-399")'


@pytest.mark.parametrize(
    "base,path,value,error_path,message",
    [
        (HTTP_SPEC, "type", "TCP", "spec.type", '"TCP" is not one of: HTTP, Prometheus'),
        (HTTP_SPEC, "http.criteria.statusCode", "600", "spec.http.criteria.statusCode", f'"600" {NOT_A_CODE}'),
        (HTTP_SPEC, "http.criteria.statusCode", "2000", "spec.http.criteria.statusCode", f'"2000" {NOT_A_CODE}'),
        (HTTP_SPEC, "http.criteria.statusCode", "200,abc", "spec.http.criteria.statusCode",
         f'"200,abc": "abc" {NOT_A_CODE}'),
        (HTTP_SPEC, "http.criteria.statusCode", "200,,204", "spec.http.criteria.statusCode",
         f'"200,,204": "" {NOT_A_CODE}'),
        (HTTP_SPEC, "http.criteria.statusCode", "", "spec.http.criteria.statusCode", "must not be empty"),
        (HTTP_SPEC, "http.criteria.statusCode", 200, "spec.http.criteria.statusCode", "200 is not a string"),
        (HTTP_SPEC, "http.criteria.statusCode", "299-200", "spec.http.criteria.statusCode",
         '"299-200": the range 299-200 runs backwards (write it 200-299)'),
        (HTTP_SPEC, "http.criteria.statusCode", "200,399-300", "spec.http.criteria.statusCode",
         '"200,399-300": the range 399-300 runs backwards (write it 300-399)'),
        (HTTP_SPEC, "http.headers", {"X Bad": ["1"]}, "spec.http.headers.X Bad",
         '"X Bad" is not valid: an HTTP header name'),
        (HTTP_SPEC, "http.headers", {"X-Ok": ["a\nInjected: 1"]}, "spec.http.headers.X-Ok[0]",
         '"a\nInjected: 1" is not valid: a header value on one line'),
        (HTTP_SPEC, "http.method", "DELETE", "spec.http.method", '"DELETE" is not one of: GET, POST'),
        (HTTP_SPEC, "http.url", "shop:8080", "spec.http.url", '"shop:8080" is not valid: an http(s) URL'),
        (HTTP_SPEC, "duration", ..., "spec.duration", "is required with mode Continuous"),
        (HTTP_SPEC, "timeoutSeconds", 0, "spec.timeoutSeconds", "0 is below the minimum of 1"),
        (HTTP_SPEC, "http", ..., "spec.http", "is required with type HTTP"),
        (HTTP_SPEC, "prometheus", PROMETHEUS_SPEC["prometheus"], "spec.prometheus",
         "is only allowed with type Prometheus (this check is HTTP)"),
        (PROMETHEUS_SPEC, "prometheus", ..., "spec.prometheus", "is required with type Prometheus"),
        (PROMETHEUS_SPEC, "http", HTTP_SPEC["http"], "spec.http",
         "is only allowed with type HTTP (this check is Prometheus)"),
        (PROMETHEUS_SPEC, "prometheus.server", ..., "spec.prometheus.server", "is required"),
        (PROMETHEUS_SPEC, "prometheus.server", "prometheus:9090", "spec.prometheus.server",
         '"prometheus:9090" is not valid: an http(s) URL'),
        (PROMETHEUS_SPEC, "prometheus.query", ..., "spec.prometheus.query", "is required"),
        (PROMETHEUS_SPEC, "prometheus.query", "", "spec.prometheus.query", "must not be empty"),
        (PROMETHEUS_SPEC, "prometheus.query", " \n ", "spec.prometheus.query",
         '" \n " is not valid: a PromQL query, not only spaces'),
        (PROMETHEUS_SPEC, "prometheus.query", "u" * 2001, "spec.prometheus.query", "at most 2000 characters"),
        (PROMETHEUS_SPEC, "prometheus.comparison", ..., "spec.prometheus.comparison", "is required"),
        (PROMETHEUS_SPEC, "prometheus.comparison", "=>", "spec.prometheus.comparison",
         '"=>" is not one of: >, >=, <, <=, ==, !='),
        (PROMETHEUS_SPEC, "prometheus.threshold", ..., "spec.prometheus.threshold", "is required"),
        (PROMETHEUS_SPEC, "prometheus.threshold", "0.5", "spec.prometheus.threshold", '"0.5" is not a number'),
        (PROMETHEUS_SPEC, "prometheus.threshold", True, "spec.prometheus.threshold", "True is not a number"),
        (PROMETHEUS_SPEC, "prometheus.threshold", float("nan"), "spec.prometheus.threshold",
         "nan is not a finite number"),
        (PROMETHEUS_SPEC, "prometheus.threshold", float("-inf"), "spec.prometheus.threshold",
         "-inf is not a finite number"),
        (PROMETHEUS_SPEC, "prometheus.step", "1m", "spec.prometheus.step",
         "unknown field (known here: server, query, comparison, threshold)"),
    ],
)
def test_an_invalid_field_is_refused_at_its_path(
    base: dict[str, Any], path: str, value: Any, error_path: str, message: str
) -> None:
    assert errors_of(changed(base, path, value)) == [(error_path, message)]


def test_every_rule_broken_is_reported_at_once() -> None:
    spec = changed(changed(HTTP_SPEC, "duration", ...), "http.criteria.statusCode", "299-200")
    spec["prometheus"] = PROMETHEUS_SPEC["prometheus"]
    paths = [path for path, _ in errors_of(spec)]
    assert paths == ["spec.duration", "spec.prometheus", "spec.http.criteria.statusCode"]


def test_a_manifest_names_the_document_and_the_field() -> None:
    text = manifest(changed(PROMETHEUS_SPEC, "prometheus.comparison", "~"))
    with pytest.raises(ManifestErrors) as caught:
        manifests.parse(text)
    assert [e.as_dict() for e in caught.value.errors] == [
        {"document": 1, "path": "spec.prometheus.comparison", "message": '"~" is not one of: >, >=, <, <=, ==, !='}
    ]


def test_the_form_schema_offers_both_types_and_the_code_list() -> None:
    schema = STATUS_CHECK_SPEC.schema()
    assert schema["properties"]["type"]["enum"] == ["HTTP", "Prometheus"]
    assert schema["properties"]["prometheus"]["required"] == ["server", "query", "comparison", "threshold"]
    codes = schema["properties"]["http"]["properties"]["criteria"]["properties"]["statusCode"]
    assert all(re.fullmatch(codes["pattern"], c) for c in ["200", "200-399", "200,204,300-399", "200, 204"])
    assert not any(re.fullmatch(codes["pattern"], c) for c in ["", "abc", "200,", "600"])
