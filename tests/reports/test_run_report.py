"""A run's report (reports.run_report): a run driven through its real lifecycle on simulated agents, with a
status check probing a real HTTP server, reported as JSON (who, how, the fault, the policy, the targets
with their times, the checks, the events, the outcome), as HTML whose charts are SVG images, and as a PDF
that poppler renders to pages that are not blank and whose text says what the run was and how it ended."""
from __future__ import annotations

import base64
import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from experiments import checking, runs
from experiments import services as experiment_services
from experiments.models import CheckRun, Injection, Run
from reports import charts, pdf, run_report
from tenants.actors import Actor
from tenants.models import Policy
from tests.experiments.checkserver import check_server, http_check
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment, simulated

pytestmark = pytest.mark.django_db

SVG_PREFIX = "data:image/svg+xml;base64,"


@pytest.fixture
def redis_url(settings: Any) -> str:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    settings.RUN_RETRY_BASE_SECONDS = 0.01
    return settings.REDIS_URL


def finished_run(world: Any, redis_url: str, *, agents: int = 3, probes: int = 3, name: str = "checkout-cpu") -> Run:
    """A real run of `name` on `agents` simulated hosts, started by bob from the portal, with the status
    check `shop` probed before, `probes` times during, and after; stopped and recovered: finished, held."""
    env = hosts_environment(world.acme, agents=agents)
    with check_server() as server, simulated(env, redis_url):
        experiment = experiment_services.update_experiment(SYSTEM, host_experiment(world.acme, name), {
            "status_checks": [{"name": "shop", "spec": http_check(server.url), "abort": True}]})
        actor = Actor(user=world.operator.user)
        run = runs.start_run(actor, experiment, "lab", dry_run=False, origin=Run.Origin.PORTAL)
        assert runs.inject(run.pk) == runs.DONE
        during = CheckRun.objects.get(run=run, purpose=CheckRun.Purpose.DURING)
        for _ in range(probes):
            assert checking.probe_once(during.pk) is not None
        assert runs.stop(actor, Run.objects.get(pk=run.pk))
        assert runs.recover(run.pk) == runs.DONE
        assert checking.after_run(run.pk) == Run.SteadyState.HELD
    run = Run.objects.get(pk=run.pk)
    assert run.phase == Run.Phase.FINISHED
    return run


class Images(HTMLParser):
    """The <img> elements of a page, as attribute dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.found.append({k: v or "" for k, v in attrs})


def images_of(html: str) -> list[dict[str, str]]:
    parser = Images()
    parser.feed(html)
    return parser.found


def svg_of(img: dict[str, str]) -> str:
    assert img["src"].startswith(SVG_PREFIX), img["src"][:40]
    return base64.b64decode(img["src"][len(SVG_PREFIX):]).decode("utf-8")


# JSON ---------------------------------------------------------------------------------------------


def test_the_json_report_holds_who_how_targets_checks_events_and_outcome(world: Any, redis_url: str) -> None:
    run = finished_run(world, redis_url)

    report = json.loads(json.dumps(run_report.build(run)))  # the JSON format is the dict, as it serialises

    assert report["run"]["id"] == str(run.uuid) and report["run"]["experiment"] == "checkout-cpu"
    assert (report["run"]["kind"], report["run"]["action"], report["run"]["environment"]) == (
        "PhysicalMachineChaos", "stress-cpu", "lab")
    assert report["run"]["spec"]["stress-cpu"] == {"load": 10, "workers": 1} and report["run"]["dry_run"] is False
    assert report["started_by"]["user"] == "bob" and report["started_by"]["actor"] == "bob"
    assert report["started_by"]["origin"]["kind"] == "portal"
    assert report["policy"]["verdict"] == "allowed" and report["policy"]["refusals"] == []

    targets = report["targets"]
    assert sorted(t["target"] for t in targets) == ["host-0 (host-0.lab)", "host-1 (host-1.lab)",
                                                    "host-2 (host-2.lab)"]
    for target in targets:
        assert target["state"] == "recovered"
        assert target["injected_at"] < target["recovered_at"]
    assert report["fault_window"]["start"] == min(t["injected_at"] for t in targets)

    checks = {c["purpose"]: c for c in report["checks"]}
    assert set(checks) == {"before", "during", "after"} and checks["during"]["name"] == "shop"
    assert [r["ok"] for r in checks["during"]["results"]] == [True, True, True]
    assert all(r["latency_ms"] >= 0 and r["at"] for r in checks["during"]["results"])

    reasons = [e["reason"] for e in report["events"]]
    for reason in ("Started", "Selected", "Injected", "Running", "Stopped", "Recovered", "Finished", "SteadyStateHeld"):
        assert reason in reasons
    assert [a["action"] for a in report["audit"]] == ["run.start", "run.stop"]

    outcome = report["outcome"]
    assert outcome["phase"] == "finished" and outcome["steady_state"] == "held"
    assert outcome["steady_state_held"] is True and outcome["recovered_cleanly"] is True
    assert outcome["recovery"] == "all 3 injected targets recovered"


def test_a_target_left_live_makes_the_recovery_not_clean(world: Any, redis_url: str) -> None:
    run = finished_run(world, redis_url, probes=1)
    Injection.objects.filter(pk=run.injections.first().pk).update(state=Injection.State.RECOVERING,
                                                                 recovered_at=None)

    outcome = run_report.build(run)["outcome"]

    assert outcome["recovered_cleanly"] is False and outcome["recovery"] == "1 of 3 targets were not recovered"


def test_a_policy_refusal_is_reported_with_its_rule(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=3)
    Policy.objects.filter(tenant=world.acme).update(max_targets=1)
    with simulated(env, redis_url):
        run = runs.start_run(SYSTEM, host_experiment(world.acme, "too-wide"), "lab", dry_run=False)
        runs.inject(run.pk)

    report = run_report.build(run)

    assert report["outcome"]["phase"] == "refused" and report["policy"]["verdict"] == "refused"
    assert [r["rule"] for r in report["policy"]["refusals"]] == ["max-targets"]
    assert report["policy"]["refusals"][0]["message"] and report["outcome"]["recovered_cleanly"] is True
    assert "PolicyRefused" in [e["reason"] for e in report["events"]]
    assert report["started_by"]["actor"] == "system:test" and report["started_by"]["actor_kind"] == "system"


def test_a_dry_run_says_the_policy_was_not_applied_and_nothing_was_injected(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    with simulated(env, redis_url):
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab", dry_run=True)
        runs.inject(run.pk)

    report = run_report.build(run)

    assert report["run"]["dry_run"] is True and report["policy"]["verdict"] == "not-checked"
    assert {t["state"] for t in report["targets"]} == {"dry-run"}
    assert report["outcome"]["recovered_cleanly"] is True
    assert report["outcome"]["recovery"] == "nothing was injected, so nothing needed recovering"


# HTML and its charts -------------------------------------------------------------------------------


def test_the_html_charts_are_svg_images_holding_a_bar_per_target_and_the_probes(world: Any, redis_url: str) -> None:
    run = finished_run(world, redis_url, probes=4)
    report = run_report.build(run)

    html = run_report.render_html(report)

    images = images_of(html)
    timeline = next(i for i in images if "timeline" in i.get("class", ""))
    assert timeline["alt"].startswith("Timeline: 3 targets")
    svg = svg_of(timeline)
    assert svg.startswith("<svg xmlns='http://www.w3.org/2000/svg'")
    assert svg.count("class='bar recovered'") == 3 and "class='fault-window'" in svg
    for name in ("host-0 (host-0.lab)", "host-1 (host-1.lab)", "host-2 (host-2.lab)"):
        assert name in svg
    check_svgs = [svg_of(i) for i in images if "check" in i.get("class", "").split()]
    assert len(check_svgs) == 3  # before, during, after
    assert max(s.count("class='probe ok'") for s in check_svgs) == 4
    assert all("class='probe fail'" not in s for s in check_svgs)
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_a_timeline_bar_never_closed_is_drawn_open_ended() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    svg = charts.timeline([charts.Bar("a", start, start + timedelta(seconds=30)), charts.Bar("b <&>", start, None)],
                          (start, start + timedelta(seconds=60)), now=start + timedelta(seconds=60))
    assert svg.count("class='bar recovered'") == 1 and svg.count("class='bar not-recovered'") == 1
    assert "b &lt;&amp;&gt;" in svg  # labels are escaped


# PDF ----------------------------------------------------------------------------------------------


def test_the_pdf_renders_to_pages_that_are_not_blank_and_say_what_ran(world: Any, redis_url: str,
                                                                       tmp_path: Path) -> None:
    run = finished_run(world, redis_url)
    report = run_report.build(run)

    document = pdf.render(run_report.render_html(report))

    assert document.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(document)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(path), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    for page in pages:
        with Image.open(page) as image:
            rgb = image.convert("RGB")
            colours = rgb.getcolors(maxcolors=1 << 20) or []
            ink = sum(count for count, colour in colours if colour != (255, 255, 255))
            assert len(colours) > 10 and ink > rgb.width * rgb.height * 0.005, page.name
    # The charts are drawn: the timeline's orange bars are on one of the pages.
    orange = []
    for page in pages:
        with Image.open(page) as image:
            orange += [c for c, (r, g, b) in image.convert("RGB").getcolors(1 << 20) if r > 150 and 40 < g < 110
                       and b < 60]
    assert sum(orange) > 200
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    assert "checkout-cpu" in text and "finished" in text
    for name in ("host-0 (host-0.lab)", "host-1 (host-1.lab)", "host-2 (host-2.lab)"):
        assert name in text
    assert "recovered cleanly" in text and "held" in text


def test_a_scheduled_run_names_its_schedule(world: Any) -> None:
    hosts_environment(world.acme, agents=1)
    experiment = host_experiment(world.acme, "nightly-cpu")
    schedule = experiment_services.save_schedule(SYSTEM, world.acme, {
        "name": "nightly", "cron": "0 2 * * *", "experiment": "nightly-cpu", "environment": "lab"})
    run = runs.start_run(Actor.system_actor("schedule:nightly"), experiment, "lab", publish=False, dry_run=True,
                         origin=Run.Origin.SCHEDULE, schedule=schedule)

    started_by = run_report.build(run)["started_by"]

    assert started_by["origin"] == {"kind": "schedule", "schedule": {"id": str(schedule.uuid), "name": "nightly"},
                                    "workflow_run": None}
    assert (started_by["actor"], started_by["actor_kind"], started_by["user"]) == ("schedule:nightly", "system", None)
    assert "schedule <strong>nightly</strong>" in run_report.render_html(run_report.build(run))
