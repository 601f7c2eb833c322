"""The tenant audit report (reports.audit_report): the period and its errors, runs by outcome, kind and
environment, the resilience score, stops, halts and refusals, the CSV of the period's entries (parsed with
csv, matched against the log), and a tampered entry making every format say the chain is broken, and where."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from experiments import runs
from experiments.models import Run
from reports import audit_report, pdf
from tenants import services as tenant_services
from tenants.actors import Actor
from tenants.models import AuditEntry
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.tenants.test_audit import tamper

pytestmark = pytest.mark.django_db



def today() -> date:
    return timezone.now().date()


def this_day() -> audit_report.Period:
    """Today (UTC), when the test's rows were written."""
    return audit_report.Period(today(), today() + timedelta(days=1))


def some_history(world: Any, changes: int = 4) -> None:
    """Policy changes by alice: audit entries of today, beside the fixture's own."""
    for n in range(changes):
        tenant_services.update_policy(Actor(user=world.owner.user), world.acme, {"max_targets": 10 + n})


def a_run(world: Any, name: str, *, phase: str = "finished", steady_state: str = "", dry_run: bool = False,
          environment: str = "lab") -> Run:
    """A run of a new experiment `name`, moved to `phase` with `steady_state` as its worker would leave it."""
    run = runs.start_run(SYSTEM, host_experiment(world.acme, name), environment, publish=False, dry_run=dry_run)
    Run.objects.filter(pk=run.pk).update(phase=phase, steady_state=steady_state,
                                         finished_at=timezone.now() if phase in Run.ENDED else None)
    return Run.objects.get(pk=run.pk)


def csv_rows(response: Any) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


# The period ---------------------------------------------------------------------------------------


def test_the_default_period_is_the_last_30_days_up_to_today() -> None:
    period = audit_report.period_from({}, today=date(2026, 11, 27))
    assert (period.start, period.end, period.last_day, period.days) == (
        date(2026, 10, 29), date(2026, 11, 28), date(2026, 11, 27), 30)


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01"}, "from"),
    ({"to": "yesterday"}, "to"),
    ({"from": "2026-11-02", "to": "2026-11-01"}, "from"),
    ({"from": "2026-11-01", "to": "2026-11-01"}, "from"),
    ({"from": "2025-01-01", "to": "2026-01-03"}, "to"),
])
def test_a_bad_period_names_its_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        audit_report.period_from(params)
    assert list(error.value.message_dict) == [field]


def test_a_period_of_366_days_is_allowed_and_the_previous_month_is_whole() -> None:
    assert audit_report.period_from({"from": "2024-01-01", "to": "2025-01-01"}).days == 366
    month = audit_report.previous_month(date(2026, 3, 1))
    assert (month.start, month.end, month.last_day) == (date(2026, 2, 1), date(2026, 3, 1), date(2026, 2, 28))


# The summary --------------------------------------------------------------------------------------


def test_runs_are_counted_by_outcome_kind_and_environment_with_the_resilience_score(world: Any) -> None:
    hosts_environment(world.acme, agents=2)
    hosts_environment(world.acme, "staging", agents=1)
    for i, state in enumerate(["held", "held", "held", "broken"]):
        a_run(world, f"real-{i}", steady_state=state)
    a_run(world, "dry", steady_state="held", dry_run=True)  # a dry run proves nothing
    a_run(world, "unchecked", environment="staging")  # no status checks: not measured
    a_run(world, "active", phase="running")  # not ended: not measured yet

    report = json.loads(json.dumps(audit_report.build(world.acme, this_day())))

    assert report["runs"]["total"] == 7 and report["runs"]["dry_runs"] == 1 and report["runs"]["ended"] == 6
    outcomes = {(o["phase"], o["steady_state"]): o["count"] for o in report["runs"]["by_outcome"]}
    assert outcomes == {("finished", "held"): 4, ("finished", "broken"): 1, ("finished", "none"): 1,
                        ("running", "none"): 1}
    assert report["runs"]["by_kind"] == [{"kind": "PhysicalMachineChaos", "count": 7}]
    assert report["runs"]["by_environment"] == [{"environment": "lab", "count": 6},
                                                {"environment": "staging", "count": 1}]
    resilience = report["resilience"]
    assert (resilience["score"], resilience["held"], resilience["measured"], resilience["bucket"]) == (
        0.75, 3, 4, "day")
    assert resilience["series"] == [{"start": today().isoformat(), "measured": 4, "held": 3, "score": 0.75}]


def test_a_long_period_charts_the_score_per_week(world: Any) -> None:
    period = audit_report.period_from({"from": (today() - timedelta(days=90)).isoformat(),
                                       "to": (today() + timedelta(days=1)).isoformat()})
    hosts_environment(world.acme, agents=1)
    a_run(world, "held", steady_state="held")

    resilience = audit_report.build(world.acme, period)["resilience"]

    assert resilience["bucket"] == "week" and 13 <= len(resilience["series"]) <= 15
    monday = today() - timedelta(days=today().weekday())
    assert [p for p in resilience["series"] if p["measured"]] == [
        {"start": monday.isoformat(), "measured": 1, "held": 1, "score": 1.0}]


def test_stops_halts_and_refusals_are_counted_and_listed(world: Any) -> None:
    hosts_environment(world.acme, agents=3)
    alice = Actor(user=world.owner.user)
    stopped = a_run(world, "stopped", phase="running")
    runs.stop(alice, stopped, publish=False)
    a_run(world, "halted", phase="running")
    runs.halt(alice, world.acme, wait=0)
    tenant_services.update_policy(alice, world.acme, {"max_duration_seconds": 10})
    refused = runs.start_run(SYSTEM, host_experiment(world.acme, "too-long", duration="60s"), "lab", publish=False,
                             dry_run=False)
    assert refused.phase == "refused"

    report = audit_report.build(world.acme, this_day())

    assert report["aborts"]["runs_stopped"] == 1 and report["aborts"]["count"] == 1
    assert report["aborts"]["items"][0]["name"] == "stopped" and "alice" in report["aborts"]["items"][0]["message"]
    assert report["halts"]["count"] == 1 and report["halts"]["runs_halted"] == 1
    assert report["halts"]["items"][0]["actor"] == "alice" and report["halts"]["items"][0]["runs"] == 1
    assert report["refusals"]["count"] == 1 and report["refusals"]["policy"] == 1
    (item,) = report["refusals"]["items"]
    assert (item["what"], item["name"], item["kind"]) == ("run", "too-long", "policy")
    assert "max-duration" in item["message"]


# CSV and the chain --------------------------------------------------------------------------------


def test_the_csv_parses_and_matches_the_entries_of_the_period(world: Any) -> None:
    some_history(world)
    entries = list(AuditEntry.objects.filter(tenant=world.acme).order_by("seq"))

    response = audit_report.download(world.acme, this_day(), "csv")

    assert response.streaming and response["Content-Type"].startswith("text/csv")
    day = f"{today():%Y%m%d}"
    assert response["Content-Disposition"] == f'attachment; filename="audit-report-acme-{day}-{day}.csv"'
    assert response["X-Chaosplane-Chain"] == "ok" and response["X-Chaosplane-Head-Hash"] == entries[-1].entry_hash
    rows = csv_rows(response)
    assert len(rows) == len(entries) >= 5
    assert list(rows[0]) == list(audit_report.CSV_FIELDS)
    assert [int(r["seq"]) for r in rows] == [e.seq for e in entries]
    assert [(r["entry_hash"], r["prev_hash"]) for r in rows] == [(e.entry_hash, e.prev_hash) for e in entries]
    assert [(r["actor"], r["action"]) for r in rows][-1] == ("alice", "policy.update")
    # Another tenant's entries are never in it, and a period without entries is a header alone.
    assert not {r["object_id"] for r in rows} & {"globex"}
    yesterday = audit_report.Period(today() - timedelta(days=1), today())
    assert csv_rows(audit_report.download(world.acme, yesterday, "csv")) == []


def test_a_tampered_entry_makes_every_format_say_the_chain_is_broken_and_where(world: Any) -> None:
    some_history(world)
    target = AuditEntry.objects.filter(tenant=world.acme).order_by("seq")[3]
    before = audit_report.build(world.acme, this_day())["chain"]
    assert before["ok"] and before["verdict"] == "ok"

    tamper("UPDATE tenants_auditentry SET actor_label = 'mallory' WHERE id = %s", [target.pk])

    chain = audit_report.build(world.acme, this_day())["chain"]
    assert (chain["ok"], chain["broken_seq"], chain["verdict"]) == (False, target.seq, f"broken at #{target.seq}")
    assert "content changed" in chain["reason"] and chain["verified_entries"] == target.seq - 1
    html = audit_report.download(world.acme, this_day(), "html")
    text = html.content.decode()
    assert f"BROKEN at entry #{target.seq}" in text and "content changed" in text
    assert html["X-Chaosplane-Chain"] == f"broken at #{target.seq}"
    as_json = json.loads(audit_report.download(world.acme, this_day(), "json").content)
    assert as_json["chain"]["broken_seq"] == target.seq
    assert audit_report.download(world.acme, this_day(), "csv")["X-Chaosplane-Chain"] == f"broken at #{target.seq}"
    # The globex chain is untouched.
    assert audit_report.build(world.globex, this_day())["chain"]["ok"]


def test_the_html_prints_the_head_hash_lists_every_entry_and_charts_the_score(world: Any) -> None:
    some_history(world, changes=3)
    head = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()

    html = audit_report.download(world.acme, this_day(), "html").content.decode()

    assert head.entry_hash in html and f"entry #{head.seq}" in html
    assert html.count("<td class=\"num\">") >= AuditEntry.objects.filter(tenant=world.acme).count()
    assert 'class="chart score" src="data:image/svg+xml;base64,' in html


def test_the_pdf_says_the_chain_and_lists_the_entries(world: Any, tmp_path: Any) -> None:
    import subprocess

    some_history(world, changes=2)
    head = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()
    report = audit_report.build(world.acme, this_day())

    document = pdf.render(audit_report.render_html(report, world.acme, this_day(), pdf=True))

    path = tmp_path / "audit.pdf"
    path.write_bytes(document)
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    assert "Audit report: Acme Corp" in text and "verified" in text and "policy.update" in text
    assert head.entry_hash[:32] in text.replace("\n", "")
