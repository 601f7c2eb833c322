"""Reports in the portal: a run's page links to its report in each format; the report's own page and its
downloads; the Settings sub-tab "Reports" with the period form, its downloads, the chain's verdict, and the
monthly subscription that owners change and everyone else reads; as owner, operator, viewer, outsider and
someone signed out."""
from __future__ import annotations

import base64
import csv
import html
import io
import re
from typing import Any

import pytest

from experiments import runs
from reports.models import AuditReportSubscription
from tenants.models import AuditEntry
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal.test_browser import page, portal_server  # noqa: F401 - the fixtures
from tests.portal.test_portal import main, signed_in, text
from tests.tenants.test_audit import tamper

pytestmark = pytest.mark.django_db
MEMBERS = ["owner", "operator", "viewer"]
REPORTS = "/t/acme/settings/reports/"


@pytest.fixture
def run(world: Any) -> Any:
    hosts_environment(world.acme, agents=2)
    return runs.start_run(SYSTEM, host_experiment(world.acme, "cpu"), "lab", publish=False, dry_run=True)


# A run's report -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_the_run_page_links_to_its_report_in_each_format(world: Any, run: Any, who: str) -> None:
    run_page = text(signed_in(world.member(who)).get(f"/t/acme/runs/{run.uuid}/"))
    base = f"/t/acme/runs/{run.uuid}/report/"
    assert f'<a href="{base}">Report (HTML)</a>' in run_page
    assert f'<a href="{base}pdf/">PDF</a>' in run_page and f'<a href="{base}json/">JSON</a>' in run_page


@pytest.mark.parametrize("who", MEMBERS)
def test_members_see_the_run_report_page_with_its_charts_as_images(world: Any, run: Any, who: str) -> None:
    response = signed_in(world.member(who)).get(f"/t/acme/runs/{run.uuid}/report/")
    assert response.status_code == 200
    body = main(response)
    assert "Run report: cpu" in body and "Policy decisions" in body
    src = re.search(r'<img class="chart timeline" src="data:image/svg\+xml;base64,([^"]+)"', body)
    assert src and "<svg" in base64.b64decode(src.group(1)).decode()
    assert f'href="/t/acme/runs/{run.uuid}/report/pdf/"' in body


def test_the_run_report_downloads(world: Any, run: Any) -> None:
    client = signed_in(world.viewer)
    base = f"/t/acme/runs/{run.uuid}/report/"
    as_pdf = client.get(f"{base}pdf/")
    assert as_pdf.status_code == 200 and as_pdf.content.startswith(b"%PDF-")
    assert as_pdf["Content-Disposition"].startswith('attachment; filename="run-report-cpu-')
    assert client.get(f"{base}json/").json()["run"]["id"] == str(run.uuid)
    standalone = text(client.get(f"{base}html/"))
    assert standalone.startswith("<!doctype html>") and "<nav" not in standalone  # print-ready: no portal chrome
    assert client.get(f"{base}docx/").status_code == 404


def test_outsiders_and_the_signed_out_do_not_see_a_run_report(world: Any, run: Any) -> None:
    assert signed_in(world.outsider).get(f"/t/acme/runs/{run.uuid}/report/").status_code == 404
    assert signed_in(world.outsider).get(f"/t/acme/runs/{run.uuid}/report/pdf/").status_code == 404
    assert signed_in(world.outsider).get(f"/t/globex/runs/{run.uuid}/report/").status_code == 404
    signed_out = signed_in(world.viewer)
    signed_out.logout()
    response = signed_out.get(f"/t/acme/runs/{run.uuid}/report/pdf/")
    assert response.status_code == 302 and "/login/" in response["Location"]


# Settings, Reports --------------------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_members_see_the_reports_sub_tab_with_downloads_and_the_chain(world: Any, who: str) -> None:
    response = signed_in(world.member(who)).get(REPORTS, {"start": "2026-01-01", "last": "2026-01-31"})
    assert response.status_code == 200
    whole, body = text(response), main(response)
    assert f'<a href="{REPORTS}" aria-current="page">Reports</a>' in whole
    head = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()
    assert "Verified" in body and head.entry_hash in body
    for fmt in ("html", "pdf", "csv"):
        assert html.escape(f"/t/acme/reports/audit/?from=2026-01-01&to=2026-02-01&format={fmt}") in body
    assert ('name="recipients"' in body) == (who == "owner")


def test_the_settings_tab_and_its_sub_tabs_link_to_reports(world: Any) -> None:
    settings_page = text(signed_in(world.viewer).get("/t/acme/settings/"))
    assert f'<a href="{REPORTS}">Reports</a>' in settings_page


def test_a_bad_period_is_named_and_offers_no_download(world: Any) -> None:
    body = main(signed_in(world.viewer).get(REPORTS, {"start": "2026-03-01", "last": "2026-01-31"}))
    assert "must be before to" in body and "format=pdf" not in body
    body = main(signed_in(world.viewer).get(REPORTS, {"start": "not a date"}))
    assert "Enter a valid date" in body and "format=pdf" not in body


def test_the_portal_downloads_the_audit_report(world: Any) -> None:
    client = signed_in(world.viewer)
    table = client.get("/t/acme/reports/audit/", {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(table.streaming_content).decode())))
    assert len(rows) == AuditEntry.objects.filter(tenant=world.acme).count()
    assert table["X-Chaosplane-Chain"] == "ok"
    bad = client.get("/t/acme/reports/audit/", {"format": "csv", "from": "2026-99-01"})
    assert bad.status_code == 400 and "from:" in text(bad)
    assert signed_in(world.outsider).get("/t/acme/reports/audit/").status_code == 404


def test_a_broken_chain_is_shown_with_where_it_breaks(world: Any) -> None:
    target = AuditEntry.objects.filter(tenant=world.acme).order_by("seq")[1]
    tamper("UPDATE tenants_auditentry SET action = 'forged' WHERE id = %s", [target.pk])
    body = main(signed_in(world.viewer).get(REPORTS))
    assert f"Broken at entry #{target.seq}" in body and "content changed" in body


def test_an_owner_sets_the_monthly_subscription(world: Any) -> None:
    response = signed_in(world.owner).post(REPORTS, {"enabled": "on", "recipients": "sre@example.com\naudit@x.org"},
                                           follow=True)
    assert response.redirect_chain[-1][0] == REPORTS
    assert "Saved who gets the monthly audit report." in text(response)
    sub = AuditReportSubscription.objects.get(tenant=world.acme)
    assert sub.enabled and sub.recipients == ["sre@example.com", "audit@x.org"]
    assert AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first().action == "auditreport.subscription"
    body = main(signed_in(world.viewer).get(REPORTS))
    assert "sre@example.com, audit@x.org" in body and 'name="recipients"' not in body


def test_bad_addresses_are_named_and_change_nothing(world: Any) -> None:
    response = signed_in(world.owner).post(REPORTS, {"enabled": "on", "recipients": "sre@example.com, nope"})
    assert response.status_code == 400
    assert "item 2 (&#x27;nope&#x27;) is not an e-mail address" in main(response)
    assert not AuditReportSubscription.objects.filter(tenant=world.acme).exists()


@pytest.mark.parametrize("who", ["operator", "viewer"])
def test_only_owners_change_the_subscription(world: Any, who: str) -> None:
    response = signed_in(world.member(who)).post(REPORTS, {"enabled": "on", "recipients": "sre@example.com"})
    assert response.status_code == 403
    assert not AuditReportSubscription.objects.filter(tenant=world.acme).exists()
    assert signed_in(world.outsider).post(REPORTS, {"enabled": "on", "recipients": "x@example.com"}).status_code == 404


# In a browser -------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_pages_fit_the_screen(world: Any, portal_server: Any, page: Any, width: int) -> None:  # noqa: F811
    from tests.portal.test_browser import sign_in
    from tests.portal.test_responsive_browser import widest

    hosts_environment(world.acme, agents=3)
    experiment = host_experiment(world.acme, "cpu-burn-with-a-rather-long-name-for-narrow-screens")
    done = runs.start_run(SYSTEM, experiment, "lab", dry_run=True, publish=False)
    runs.inject(done.pk)
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page, portal_server.url, "alice")
    for path in (f"runs/{done.uuid}/report/", "settings/reports/"):
        response = page.goto(f"{portal_server.url}/t/acme/{path}")
        assert response is not None and response.status == 200, path
        assert page.locator("img.chart").count() >= 1 or path == "settings/reports/"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} at {width} px scrolls sideways by {overflow} px: {widest(page)}"
