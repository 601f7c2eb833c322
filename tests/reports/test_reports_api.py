"""Reports over the API: a run's report (html, pdf, json) and the tenant audit report (html, pdf, csv, json),
read by owner, operator and viewer, a 404 to an outsider, refused without credentials; bad parameters are
400s naming the field; the monthly subscription read by all and set by owners only, audited, with bad
addresses named. And the endpoints are in the OpenAPI schema."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import yaml

from experiments import runs
from reports.models import AuditReportSubscription
from tenants.models import AuditEntry
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment

from .test_run_report import finished_run, redis_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db
T = "/api/v1/tenants/acme"
MEMBERS = ["owner", "operator", "viewer"]


@pytest.fixture
def run(world: Any) -> Any:
    """A run of `cpu` on acme's `lab`, started (not yet injected)."""
    hosts_environment(world.acme, agents=2)
    return runs.start_run(SYSTEM, host_experiment(world.acme, "cpu"), "lab", publish=False, dry_run=True)


# Run reports --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_members_read_a_run_report_in_each_format(world: Any, api: Any, run: Any, who: str) -> None:
    client = api(world.member(who))
    url = f"{T}/runs/{run.uuid}/report/"

    html = client.get(url)
    assert html.status_code == 200 and html["Content-Type"] == "text/html; charset=utf-8"
    assert "Run report: cpu" in html.content.decode()
    as_json = client.get(url, {"format": "json"})
    assert as_json.status_code == 200 and as_json.json()["run"]["id"] == str(run.uuid)
    assert as_json.json()["run"]["experiment"] == "cpu"


def test_a_run_report_pdf_is_an_attachment_named_after_the_run(world: Any, api: Any, run: Any) -> None:
    response = api(world.viewer).get(f"{T}/runs/{run.uuid}/report/", {"format": "pdf"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert response["Content-Disposition"] == f'attachment; filename="run-report-cpu-{str(run.uuid)[:8]}.pdf"'


def test_an_outsider_gets_404_for_a_run_report_and_anonymous_is_refused(world: Any, api: Any, run: Any) -> None:
    outsider = api(world.outsider)
    assert outsider.get(f"{T}/runs/{run.uuid}/report/").status_code == 404
    assert outsider.get(f"/api/v1/tenants/globex/runs/{run.uuid}/report/").status_code == 404
    assert outsider.get(f"/api/v1/tenants/globex/runs/{run.uuid}/report/", {"format": "pdf"}).status_code == 404
    anonymous = api(None).get(f"{T}/runs/{run.uuid}/report/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")


def test_run_report_bad_parameters(world: Any, api: Any, run: Any) -> None:
    client = api(world.viewer)
    bad = client.get(f"{T}/runs/{run.uuid}/report/", {"format": "xml"})
    assert bad.status_code == 400 and list(bad.json()) == ["format"] and "html, pdf, json" in bad.json()["format"][0]
    assert client.get(f"{T}/runs/not-a-uuid/report/").status_code == 404
    assert client.get(f"{T}/runs/00000000-0000-0000-0000-000000000000/report/").status_code == 404


def test_a_finished_runs_json_report_over_the_api_names_origin_actor_and_targets(
    world: Any, api: Any, redis_url: str  # noqa: F811 - the fixture
) -> None:
    done = finished_run(world, redis_url, probes=2)
    body = api(world.viewer).get(f"{T}/runs/{done.uuid}/report/", {"format": "json"}).json()
    assert body["started_by"]["origin"]["kind"] == "portal" and body["started_by"]["actor"] == "bob"
    assert len(body["targets"]) == 3 and all(t["injected_at"] and t["recovered_at"] for t in body["targets"])
    assert body["outcome"]["steady_state_held"] is True and body["outcome"]["recovered_cleanly"] is True


# Audit reports ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_members_read_the_audit_report(world: Any, api: Any, who: str) -> None:
    client = api(world.member(who))
    entries = AuditEntry.objects.filter(tenant=world.acme).order_by("seq")

    html = client.get(f"{T}/reports/audit/")
    assert html.status_code == 200 and "Audit report: Acme Corp" in html.content.decode()
    assert html["X-Chaosplane-Chain"] == "ok" and html["X-Chaosplane-Head-Hash"] == entries.last().entry_hash
    table = client.get(f"{T}/reports/audit/", {"format": "csv"})
    assert table.status_code == 200 and table["Content-Disposition"].startswith(
        'attachment; filename="audit-report-acme-')
    rows = list(csv.DictReader(io.StringIO(b"".join(table.streaming_content).decode())))
    assert [int(r["seq"]) for r in rows] == list(entries.values_list("seq", flat=True))


def test_the_audit_report_pdf_is_an_attachment(world: Any, api: Any) -> None:
    response = api(world.viewer).get(f"{T}/reports/audit/", {"from": "2026-01-01", "to": "2026-02-01",
                                                              "format": "pdf"})
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    assert response["Content-Disposition"] == 'attachment; filename="audit-report-acme-20260101-20260131.pdf"'
    assert response["X-Chaosplane-Chain"] == "ok"


def test_an_outsider_gets_404_for_the_audit_report_and_anonymous_is_refused(world: Any, api: Any) -> None:
    assert api(world.outsider).get(f"{T}/reports/audit/").status_code == 404
    assert api(world.outsider).get(f"{T}/reports/audit/", {"format": "csv"}).status_code == 404
    assert api(None).get(f"{T}/reports/audit/", {"format": "csv"}).status_code == 401
    # The outsider's own tenant is theirs to read, and holds none of acme's entries.
    own = api(world.outsider).get("/api/v1/tenants/globex/reports/audit/", {"format": "csv"})
    assert own.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(own.streaming_content).decode())))
    assert [r["entry_hash"] for r in rows] == list(
        AuditEntry.objects.filter(tenant=world.globex).order_by("seq").values_list("entry_hash", flat=True))


@pytest.mark.parametrize(("params", "field"), [
    ({"format": "docx"}, "format"),
    ({"from": "2026-02-30"}, "from"),
    ({"to": "soon"}, "to"),
    ({"from": "2026-03-01", "to": "2026-02-01"}, "from"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
])
def test_bad_audit_report_parameters_name_their_field(world: Any, api: Any, params: dict[str, str],
                                                      field: str) -> None:
    response = api(world.viewer).get(f"{T}/reports/audit/", params)
    assert response.status_code == 400 and list(response.json()) == [field], response.content


# The monthly subscription -------------------------------------------------------------------------


SUB = f"{T}/reports/audit/subscription/"


def state(world: Any) -> Any:
    sub = AuditReportSubscription.objects.filter(tenant=world.acme).first()
    return (sub.enabled, sub.recipients, sub.last_period) if sub else None


@pytest.mark.parametrize(("who", "read", "write"), [
    ("owner", 200, 200), ("operator", 200, 403), ("viewer", 200, 403), ("outsider", 404, 404)])
def test_who_may_read_and_set_the_subscription(world: Any, api: Any, who: str, read: int, write: int) -> None:
    client = api(world.member(who))
    entries = AuditEntry.objects.filter(tenant=world.acme).count()

    got = client.get(SUB)
    assert got.status_code == read
    if read == 200:
        assert got.json() == {"enabled": False, "recipients": [], "last_period": None, "next_send": None,
                              "updated_at": None}
    put = client.put(SUB, {"enabled": True, "recipients": ["sre@example.com", " audit@example.org "]},
                     format="json")
    assert put.status_code == write, put.content
    if write == 200:
        assert put.json()["recipients"] == ["sre@example.com", "audit@example.org"] and put.json()["enabled"]
        assert put.json()["next_send"] and put.json()["last_period"]
        entry = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()
        assert (entry.action, entry.actor_kind, entry.before) == ("auditreport.subscription", "token", None)
        assert entry.actor_token.user == world.owner.user
        assert entry.after == {"enabled": True, "recipients": ["sre@example.com", "audit@example.org"]}
    else:
        assert state(world) is None and AuditEntry.objects.filter(tenant=world.acme).count() == entries


@pytest.mark.parametrize(("body", "field"), [
    ({"enabled": True, "recipients": ["sre@example.com", "not-an-address"]}, "recipients"),
    ({"enabled": True, "recipients": []}, "recipients"),
    ({"enabled": "perhaps", "recipients": []}, "enabled"),
    ({"recipients": ["sre@example.com"]}, "enabled"),
    ({"enabled": True, "recipients": "sre@example.com"}, "recipients"),
    ({"enabled": True, "recipients": [f"a{i}@example.com" for i in range(21)]}, "recipients"),
])
def test_a_bad_subscription_names_its_field_and_changes_nothing(world: Any, api: Any, body: dict[str, Any],
                                                                field: str) -> None:
    client = api(world.owner)
    assert client.put(SUB, {"enabled": True, "recipients": ["keep@example.com"]}, format="json").status_code == 200
    before, entries = state(world), AuditEntry.objects.filter(tenant=world.acme).count()

    response = client.put(SUB, body, format="json")

    assert response.status_code == 400 and field in response.json(), response.content
    if body.get("recipients") == ["sre@example.com", "not-an-address"]:
        assert "item 2 ('not-an-address') is not an e-mail address" in response.json()["recipients"]
    assert state(world) == before and AuditEntry.objects.filter(tenant=world.acme).count() == entries


def test_disabling_keeps_the_recipients_and_is_audited_with_before_and_after(world: Any, api: Any) -> None:
    client = api(world.owner)
    client.put(SUB, {"enabled": True, "recipients": ["sre@example.com"]}, format="json")
    response = client.put(SUB, {"enabled": False, "recipients": ["sre@example.com"]}, format="json")
    assert response.status_code == 200 and response.json()["next_send"] is None
    entry = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()
    assert entry.before == {"enabled": True, "recipients": ["sre@example.com"]}
    assert entry.after == {"enabled": False, "recipients": ["sre@example.com"]}


# The schema ---------------------------------------------------------------------------------------


def test_the_report_endpoints_are_in_the_openapi_schema(world: Any, api: Any) -> None:
    schema = yaml.safe_load(api(world.viewer).get("/api/v1/schema/").content)
    run_report = schema["paths"]["/api/v1/tenants/{tenant_slug}/runs/{id}/report/"]["get"]
    assert set(run_report["responses"]["200"]["content"]) == {"text/html", "application/pdf", "application/json"}
    audit = schema["paths"]["/api/v1/tenants/{tenant_slug}/reports/audit/"]["get"]
    assert {p["name"] for p in audit["parameters"]} >= {"from", "to", "format"}
    assert "X-Chaosplane-Chain" in audit["responses"]["200"]["headers"]
    assert set(schema["paths"]["/api/v1/tenants/{tenant_slug}/reports/audit/subscription/"]) >= {"get", "put"}
