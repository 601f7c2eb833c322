"""The runs pages through Django's test Client: the list and its filters, a run's page (snapshot, buttons
valid for its phase, the server-drawn timeline, targets, events), its live JSON, pause / resume / stop,
and the archives of ended runs and workflow runs, for owner, operator, viewer and outsider."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments import runs
from experiments.models import CheckResult, CheckRun, Event, Injection, Run, WorkflowRun
from experiments.portal import runs as runs_pages
from tenants.actors import Actor
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment, simulated
from tests.portal.test_portal import signed_in, text

pytestmark = pytest.mark.django_db

Phase, State = Run.Phase, Injection.State
MEMBERS = ["owner", "operator", "viewer"]
BUTTONS = ("Pause", "Resume", "Stop")


@pytest.fixture
def lab(world: Any) -> Any:
    """acme's hosts environment `lab` (host-0, host-1, host-2) and its experiment `cpu` (60 s)."""
    return hosts_environment(world.acme), host_experiment(world.acme, "cpu")


def a_run(world: Any, phase: str = Phase.RUNNING, *, targets: int = 2, experiment: Any = None,
          actor: Actor = SYSTEM, dry_run: bool = False, **fields: Any) -> Run:
    """A run of `cpu` (or `experiment`) on `lab`, started through experiments.runs and then moved to
    `phase` with its rows, as its worker would have left them."""
    experiment = experiment or host_experiment(world.acme, f"cpu-{Run.objects.count()}")
    run = runs.start_run(actor, experiment, "lab", publish=False, dry_run=dry_run, origin=Run.Origin.PORTAL)
    if phase == Phase.PENDING:
        return run
    now = timezone.now()
    ended = phase in Run.ENDED
    update = {"phase": phase, "started_at": now - timedelta(seconds=30), "candidates": 3, **fields}
    if ended:
        update.setdefault("finished_at", now - timedelta(seconds=2))
    Run.objects.filter(pk=run.pk).update(**update)
    for i in range(targets):
        recovered = ended or phase == Phase.PAUSED
        Injection.objects.create(
            run=run, fault_id=f"cp-{run.pk}-1-{i}", target_key=f"agent:host-{i}",
            target_display=f"host-{i} (host-{i}.lab)",
            state=State.RECOVERED if recovered else State.INJECTED,
            injected_at=now - timedelta(seconds=28), recovered_at=now - timedelta(seconds=3) if recovered else None,
        )
    return Run.objects.get(pk=run.pk)


def url(run: Run, what: str = "") -> str:
    return f"/t/{run.tenant.slug}/runs/{run.uuid}/{what + '/' if what else ''}"


def buttons(response: Any) -> set[str]:
    return {b for b in BUTTONS if re.search(rf">\s*{b}\s*</button>", text(response))}


def phase_of(run: Run) -> str:
    return Run.objects.get(pk=run.pk).phase


# The list -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS)
def test_every_member_sees_the_tenants_runs_newest_first(world: Any, lab: Any, member: str) -> None:
    older = a_run(world, Phase.FINISHED, experiment=host_experiment(world.acme, "older"))
    newer = a_run(world, Phase.RUNNING, experiment=host_experiment(world.acme, "newer"), dry_run=True)
    response = signed_in(world.member(member)).get("/t/acme/runs/")
    assert response.status_code == 200
    body = text(response)
    assert body.index(f'data-run="{newer.uuid}"') < body.index(f'data-run="{older.uuid}"')
    assert f'href="/t/acme/runs/{newer.uuid}/"' in body
    assert 'rn-phase rn-phase-running">running<' in body and "dry run" in body
    assert "portal" in body and "PhysicalMachineChaos · stress-cpu" in body
    assert "so far" in body  # the running run's duration is still counting


def test_an_outsider_gets_a_404_for_every_runs_page(world: Any, lab: Any) -> None:
    run = a_run(world)
    client = signed_in(world.outsider)
    for path in ("/t/acme/runs/", "/t/acme/archives/", url(run), url(run, "live")):
        assert client.get(path).status_code == 404, path
    for what in ("pause", "resume", "stop"):
        assert client.post(url(run, what)).status_code == 404
    assert phase_of(run) == Phase.RUNNING


def test_signed_out_visitors_are_sent_to_sign_in(world: Any, lab: Any) -> None:
    from django.test import Client

    run = a_run(world)
    for path in ("/t/acme/runs/", url(run), url(run, "live"), "/t/acme/archives/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), path


def test_the_list_filters_by_phase_kind_experiment_environment_and_dry_run(world: Any, lab: Any) -> None:
    hosts_environment(world.acme, "staging", agents=1)
    running = a_run(world, Phase.RUNNING, experiment=host_experiment(world.acme, "checkout-cpu"))
    paused = a_run(world, Phase.PAUSED, experiment=host_experiment(world.acme, "search-cpu"))
    finished = a_run(world, Phase.FINISHED, experiment=host_experiment(world.acme, "search-io"), dry_run=True)
    client = signed_in(world.viewer)

    def shown(query: str) -> set[str]:
        return set(re.findall(r'data-run="([0-9a-f-]+)"', text(client.get(f"/t/acme/runs/?{query}"))))

    assert shown("phase=running&phase=paused") == {str(running.uuid), str(paused.uuid)}
    assert shown("experiment_name=SEARCH") == {str(paused.uuid), str(finished.uuid)}
    assert shown("dry_run=true") == {str(finished.uuid)}
    assert shown("dry_run=false&phase=finished") == set()
    assert shown("environment=lab&kind=PhysicalMachineChaos") == {str(r.uuid) for r in (running, paused, finished)}
    assert shown("environment=staging") == set()
    assert shown(f"experiment={running.experiment.uuid}") == {str(running.uuid)}
    page = text(client.get("/t/acme/runs/?experiment_name=search"))
    assert 'value="search"' in page and "Clear filters" in page
    assert '<option value="lab">lab</option>' in page  # environments seen in runs
    assert 'name="phase" value="running"' in page



def test_runs_started_by_a_schedule_or_a_workflow_link_to_it(world: Any, lab: Any) -> None:
    from experiments import services
    from experiments.models import WorkflowNode

    scheduled = a_run(world, Phase.FINISHED)
    schedule = services.save_schedule(SYSTEM, world.acme, {
        "name": "nightly", "cron": "0 3 * * *", "experiment": scheduled.experiment.name, "environment": "lab"})
    Run.objects.filter(pk=scheduled.pk).update(origin=Run.Origin.SCHEDULE, schedule=schedule)
    from_workflow = a_run(world, Phase.RUNNING)
    wr = WorkflowRun.objects.create(tenant=world.acme, workflow_name="game-day", environment_name="lab")
    node = WorkflowNode.objects.create(workflow_run=wr, path="entry/burn", name="burn", template_type="Serial")
    Run.objects.filter(pk=from_workflow.pk).update(origin=Run.Origin.WORKFLOW, workflow_node=node)
    client = signed_in(world.viewer)
    pages = text(client.get(url(scheduled))) + text(client.get(url(from_workflow)))
    for page in (text(client.get("/t/acme/runs/")), pages):
        assert f'schedule</span> <a href="/t/acme/schedules/{schedule.uuid}/">nightly</a>' in page
        assert f'workflow</span> <a href="/t/acme/workflow-runs/{wr.uuid}/">game-day · entry/burn</a>' in page

def test_a_bad_filter_shows_its_error_and_no_runs(world: Any, lab: Any) -> None:
    a_run(world)
    response = signed_in(world.owner).get("/t/acme/runs/?phase=exploded")
    assert response.status_code == 200
    body = text(response)
    assert "exploded is not one of the available choices" in html.unescape(body)
    assert "data-run=" not in body and "Fix the filters above" in body


def test_the_list_says_what_to_do_when_there_are_no_runs(world: Any, lab: Any) -> None:
    body = text(signed_in(world.viewer).get("/t/acme/runs/"))
    assert "No runs yet" in body and 'href="/t/acme/experiments/"' in body
    a_run(world, Phase.FINISHED)
    body = text(signed_in(world.viewer).get("/t/acme/runs/?phase=paused"))
    assert "No runs match these filters" in body


def test_the_list_pages_and_its_links_keep_the_filters(world: Any, lab: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(runs_pages, "PAGE_SIZE", 2)
    experiment = host_experiment(world.acme, "paged")
    made = [a_run(world, Phase.FINISHED, experiment=experiment) for _ in range(5)]
    client = signed_in(world.viewer)
    first = text(client.get("/t/acme/runs/?phase=finished&phase=failed"))
    assert "Page 1 of 3" in first
    assert "phase=finished&amp;phase=failed&amp;page=2" in first
    last = text(client.get("/t/acme/runs/?phase=finished&phase=failed&page=3"))
    assert re.findall(r'data-run="([0-9a-f-]+)"', last) == [str(made[0].uuid)]


def test_the_list_queries_do_not_grow_with_its_rows(world: Any, lab: Any) -> None:
    client = signed_in(world.viewer)
    a_run(world, Phase.FINISHED)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/t/acme/runs/").status_code == 200
    for _ in range(6):
        a_run(world, Phase.RUNNING, actor=Actor(user=world.operator.user))
    with CaptureQueriesContext(connection) as many:
        assert client.get("/t/acme/runs/").status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# A run's page -------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS)
def test_a_runs_page_shows_what_it_ran_where_and_by_whom(world: Any, lab: Any, member: str) -> None:
    run = a_run(world, Phase.RUNNING, actor=Actor(user=world.operator.user), message="waiting for nothing")
    response = signed_in(world.member(member)).get(url(run))
    assert response.status_code == 200
    body = text(response)
    assert '<h1>Run of cpu-0</h1>' in body
    assert 'data-rn-phase="running"' in body and "waiting for nothing" in body
    assert "PhysicalMachineChaos" in body and "<code>stress-cpu</code>" in body
    assert "load: 10" in body and "workers: 1" in body  # the parameters of the snapshot
    assert 'href="/t/acme/environments/lab/"' in body
    assert "portal" in body and "by bob" in body
    assert f'<time datetime="{run.deadline.isoformat()}' in body
    assert "of 1 min 00 s planned" in body
    assert f'data-rn-live="/t/acme/runs/{run.uuid}/live/"' in body and 'data-rn-ended="false"' in body
    assert "js/runs.js" in body


def test_another_tenants_run_is_a_404_page(world: Any, lab: Any) -> None:
    hosts_environment(world.globex)
    theirs = runs.start_run(SYSTEM, host_experiment(world.globex, "theirs"), "lab", publish=False)
    client = signed_in(world.owner)
    assert client.get(f"/t/acme/runs/{theirs.uuid}/").status_code == 404
    assert client.get(f"/t/acme/runs/{theirs.uuid}/live/").status_code == 404
    assert client.post(f"/t/acme/runs/{theirs.uuid}/stop/").status_code == 404
    assert client.get(f"/t/globex/runs/{theirs.uuid}/").status_code == 404
    assert phase_of(theirs) == Phase.PENDING


@pytest.mark.parametrize(("phase", "expected"), [
    (Phase.RUNNING, {"Pause", "Stop"}),
    (Phase.PAUSED, {"Resume", "Stop"}),
    (Phase.PENDING, {"Stop"}),
    (Phase.INJECTING, {"Stop"}),
    (Phase.PAUSING, {"Stop"}),
    (Phase.RECOVERING, set()),
    (Phase.FINISHED, set()),
    (Phase.FAILED, set()),
])
def test_operators_see_only_the_buttons_valid_in_the_runs_phase(world: Any, lab: Any, phase: str,
                                                                 expected: set[str]) -> None:
    run = a_run(world, phase)
    for member in ("owner", "operator"):
        assert buttons(signed_in(world.member(member)).get(url(run))) == expected, member


def test_a_one_shot_run_cannot_be_paused_so_it_has_no_pause_button(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.RUNNING, one_shot=True)
    assert buttons(signed_in(world.operator).get(url(run))) == {"Stop"}


@pytest.mark.parametrize("phase", [Phase.RUNNING, Phase.PAUSED])
def test_a_viewer_sees_no_buttons_and_the_server_refuses_their_posts(world: Any, lab: Any, phase: str) -> None:
    run = a_run(world, phase)
    client = signed_in(world.viewer)
    assert buttons(client.get(url(run))) == set()
    assert "csrfmiddlewaretoken" not in text(client.get(url(run))).split("<main>")[1]
    for what in ("pause", "resume", "stop"):
        assert client.post(url(run, what)).status_code == 403
    assert phase_of(run) == phase
    assert not Event.objects.filter(run=run, reason__in=["Pausing", "Resumed", "Stopped"]).exists()


@pytest.mark.parametrize("member", ["owner", "operator"])
def test_pause_then_resume_then_stop_move_the_run(world: Any, lab: Any, member: str) -> None:
    run = a_run(world, Phase.RUNNING)
    client = signed_in(world.member(member))
    response = client.post(url(run, "pause"), follow=True)
    assert response.redirect_chain[-1][0] == url(run)
    assert phase_of(run) == Phase.PAUSING and "Pausing: the faults are being recovered" in text(response)
    assert buttons(response) == {"Stop"}

    Run.objects.filter(pk=run.pk).update(phase=Phase.PAUSED)  # what the recover task does
    Injection.objects.filter(run=run).update(state=State.RECOVERED, recovered_at=timezone.now())
    response = client.post(url(run, "resume"), follow=True)
    assert phase_of(run) == Phase.INJECTING and "Resumed" in text(response)
    assert Injection.objects.filter(run=run, round=2).count() == 2

    response = client.post(url(run, "stop"), follow=True)
    assert phase_of(run) == Phase.RECOVERING
    assert "every fault of this run is being recovered" in text(response)
    assert buttons(response) == set()
    user = world.member(member).user.username
    messages = list(Event.objects.filter(run=run).order_by("created_at", "id").values_list("reason", "message"))
    assert ("Pausing", f"paused by {user}") in messages and ("Stopped", f"stopped by {user}") in messages


def test_a_command_the_phase_does_not_allow_shows_why_and_changes_nothing(world: Any, lab: Any) -> None:
    client = signed_in(world.operator)
    paused = a_run(world, Phase.PAUSED)
    body = text(client.post(url(paused, "pause"), follow=True))
    assert "This run was not paused: only a running run can be paused; this one is paused." in body
    assert phase_of(paused) == Phase.PAUSED

    running = a_run(world, Phase.RUNNING)
    body = text(client.post(url(running, "resume"), follow=True))
    assert "only a paused run can be resumed" in body and phase_of(running) == Phase.RUNNING

    late = a_run(world, Phase.PAUSED, deadline=timezone.now() - timedelta(seconds=1))
    body = text(client.post(url(late, "resume"), follow=True))
    assert "past its deadline" in body and phase_of(late) == Phase.PAUSED

    finished = a_run(world, Phase.FINISHED)
    body = html.unescape(text(client.post(url(finished, "stop"), follow=True)))
    assert "This run was not stopped: the run is finished: archived runs are read-only." in body

    recovering = a_run(world, Phase.RECOVERING)
    body = text(client.post(url(recovering, "stop"), follow=True))
    assert "This run was already recovering: there was nothing to stop." in body


def test_the_commands_answer_only_posts(world: Any, lab: Any) -> None:
    run = a_run(world)
    client = signed_in(world.owner)
    for what in ("pause", "resume", "stop"):
        assert client.get(url(run, what)).status_code == 405
    assert client.post(url(run, "live")).status_code in (403, 405)
    assert phase_of(run) == Phase.RUNNING


def test_the_timeline_has_a_bar_per_injected_target_and_a_dot_per_probe(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.RUNNING, targets=3)
    Injection.objects.filter(run=run, target_key="agent:host-2").update(state=State.FAILED, injected_at=None,
                                                                        error="agent said no")
    check = CheckRun.objects.create(tenant=world.acme, run=run, name="shop-up", purpose=CheckRun.Purpose.DURING,
                                    spec={}, probes=3, failures=1)
    now = timezone.now()
    for seconds, ok in ((20, True), (10, True), (5, False)):
        CheckResult.objects.create(check_run=check, at=now - timedelta(seconds=seconds), ok=ok, latency_ms=12,
                                   detail="HTTP 200" if ok else "HTTP 503")
    body = text(signed_in(world.viewer).get(url(run)))
    svg = re.search(r"<svg class=\"rn-timeline\".*?</svg>", body, re.S).group(0)
    assert 'role="img"' in svg
    label = html.unescape(re.search(r'aria-label="([^"]*)"', svg).group(1))
    assert "2 of 3 targets took the fault" in label and "2 still in place" in label
    assert "3 status-check probes, 1 failed" in label
    bars = re.findall(r'<rect class="rn-bar rn-bar-(\w+)" data-target="([^"]+)"', svg)
    assert sorted(bars) == [("injected", "host-0 (host-0.lab)"), ("injected", "host-1 (host-1.lab)")]
    assert '<rect class="rn-window"' in svg  # the fault window, shaded behind
    assert ">now</text>" in svg and ">deadline</text>" in svg and "time (UTC)" in svg
    assert len(re.findall(r'<circle class="rn-dot rn-dot-ok"', svg)) == 2
    failed = re.findall(r'<circle class="rn-dot rn-dot-failed"[^>]*><title>([^<]*)</title>', svg)
    assert len(failed) == 1 and "shop-up" in failed[0] and "failed, 12 ms: HTTP 503" in failed[0]
    assert ">failed</text>" in svg  # host-2 never held the fault: its row says why
    # The targets table: every row, with the error.
    assert 'data-target="host-2 (host-2.lab)" data-state="failed"' in body and "agent said no" in body
    assert "shop-up" in body and "1 failing in a row" in body


def test_a_paused_and_resumed_target_has_a_bar_per_round(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.RUNNING, targets=1)
    now = timezone.now()
    Injection.objects.filter(run=run).update(state=State.RECOVERED, recovered_at=now - timedelta(seconds=15))
    Injection.objects.create(run=run, round=2, fault_id=f"cp-{run.pk}-2-0", target_key="agent:host-0",
                             target_display="host-0 (host-0.lab)", state=State.INJECTED,
                             injected_at=now - timedelta(seconds=5))
    svg = text(signed_in(world.viewer).get(url(run)))
    rounds = re.findall(r'data-target="host-0 \(host-0.lab\)" data-round="(\d)" data-state="(\w+)"', svg)
    assert rounds == [("1", "recovered"), ("2", "injected")]
    assert svg.count('<g class="rn-row">') == 1



def test_a_timeline_with_too_many_targets_draws_the_first_and_says_so(world: Any, lab: Any, monkeypatch: Any) -> None:
    from experiments.portal import run_timeline

    monkeypatch.setattr(run_timeline, "MAX_ROWS", 2)
    run = a_run(world, Phase.RUNNING, targets=3)
    body = text(signed_in(world.viewer).get(url(run)))
    assert body.count('<g class="rn-row">') == 2 and "1 more target not drawn" in body
    assert body.count("<tr data-target=") == 3  # the table lists them all

def test_a_pending_runs_page_says_what_comes_next(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.PENDING)
    body = text(signed_in(world.viewer).get(url(run)))
    assert "Not selected yet" in body and "No target has taken the fault yet." in body
    assert "not yet" in body  # started
    assert "Started" in body and "data-reason=\"Started\"" in body  # its first event


def test_a_refused_runs_page_says_why_nothing_happened(world: Any, lab: Any) -> None:
    from tenants.models import Policy

    Policy.objects.filter(tenant=world.acme).update(max_duration_seconds=10)
    run = runs.start_run(SYSTEM, host_experiment(world.acme, "too-long"), "lab", publish=False)
    assert run.phase == Phase.REFUSED
    body = text(signed_in(world.operator).get(url(run)))
    assert "The run was refused: nothing was injected." in body
    assert "None: the run was refused" in body and buttons(signed_in(world.operator).get(url(run))) == set()
    assert 'class="event-warning" data-reason="PolicyRefused"' in body
    assert 'data-rn-ended="true"' in body and "what is below is final" in body


def test_events_are_oldest_first_with_warnings_marked(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.RUNNING)
    runs.event(run, "Injected", "on 2 targets")
    runs.event(run, "RecoveryFailed", "host-1 did not answer", warning=True)
    body = text(signed_in(world.viewer).get(url(run)))
    reasons = re.findall(r'data-reason="(\w+)"', body)
    assert reasons == ["Started", "Injected", "RecoveryFailed"]
    assert 'class="event-warning" data-reason="RecoveryFailed"' in body and "⚠ RecoveryFailed" in body


def test_a_runs_page_keeps_its_query_count_with_more_targets(world: Any, lab: Any) -> None:
    client = signed_in(world.viewer)
    small = a_run(world, Phase.RUNNING, targets=1)
    big = a_run(world, Phase.RUNNING, targets=30)
    with CaptureQueriesContext(connection) as few:
        client.get(url(small))
    with CaptureQueriesContext(connection) as many:
        client.get(url(big))
    assert len(many) == len(few)


# The live JSON ------------------------------------------------------------------------------------


def test_the_live_json_has_the_runs_state_and_its_rendered_parts(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.RUNNING)
    response = signed_in(world.operator).get(url(run, "live"))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    state = response.json()
    assert state["id"] == str(run.uuid) and state["phase"] == "running" and state["ended"] is False
    assert state["buttons"] == {"pause": True, "resume": False, "stop": True}
    assert [t["target"] for t in state["targets"]] == ["host-0 (host-0.lab)", "host-1 (host-1.lab)"]
    assert state["targets"][0]["state"] == "injected" and state["targets"][0]["injected_at"]
    assert state["targets"][0]["recovered_at"] is None and state["targets_total"] == 2
    assert [e["reason"] for e in state["events"]] == ["Started"]
    assert set(state["html"]) == {"summary", "actions", "timeline", "targets", "events"}
    assert 'data-target="host-0 (host-0.lab)"' in state["html"]["timeline"]
    assert ">Pause</button>" in state["html"]["actions"] and "csrfmiddlewaretoken" in state["html"]["actions"]
    assert 'data-rn-phase="running"' in state["html"]["summary"]


def test_the_live_json_says_when_the_run_has_ended(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.FINISHED)
    state = signed_in(world.viewer).get(url(run, "live")).json()
    assert state["ended"] is True and state["phase"] == "finished" and state["finished_at"]
    assert {t["state"] for t in state["targets"]} == {"recovered"}
    assert all(t["recovered_at"] for t in state["targets"])
    assert state["html"]["actions"].strip() == ""


def test_the_live_json_gives_a_viewer_no_buttons(world: Any, lab: Any) -> None:
    run = a_run(world, Phase.RUNNING)
    state = signed_in(world.viewer).get(url(run, "live")).json()
    assert state["buttons"] == {"pause": False, "resume": False, "stop": False}
    assert "<button" not in state["html"]["actions"]


# With the simulated agents: the real lifecycle, commanded from the portal ----------------------------


def test_a_run_on_simulated_agents_is_paused_resumed_and_stopped_from_its_page(world: Any, settings: Any) -> None:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    settings.RUN_RETRY_BASE_SECONDS = 0.01
    env = hosts_environment(world.acme, agents=2)
    client = signed_in(world.operator)
    with simulated(env, settings.REDIS_URL) as sim:
        run = runs.start_run(Actor(user=world.operator.user), host_experiment(world.acme), "lab", publish=False)
        runs.inject(run.pk)
        page = text(client.get(url(run)))
        assert len(re.findall(r'<rect class="rn-bar rn-bar-injected"', page)) == 2
        assert buttons(client.get(url(run))) == {"Pause", "Stop"}

        client.post(url(run, "pause"))
        runs.recover(run.pk)  # what the published recover task does
        assert phase_of(run) == Phase.PAUSED and sim.all_held() == {}
        assert buttons(client.get(url(run))) == {"Resume", "Stop"}
        assert len(re.findall(r'rn-bar-recovered', text(client.get(url(run))))) >= 2

        client.post(url(run, "resume"))
        runs.inject(run.pk)
        assert phase_of(run) == Phase.RUNNING and len(sim.all_held()) == 2

        client.post(url(run, "stop"))
        runs.recover(run.pk)
        assert sim.all_held() == {}
    state = client.get(url(run, "live")).json()
    assert state["ended"] is True and state["phase"] == "finished"
    assert [(t["round"], t["state"]) for t in state["targets"]] == [(1, "recovered")] * 2 + [(2, "recovered")] * 2
    body = text(client.get(url(run)))
    assert len(re.findall(r'<rect class="rn-bar rn-bar-recovered"', body)) == 4


# Archives -----------------------------------------------------------------------------------------


def a_workflow_run(world: Any, name: str, phase: str, **fields: Any) -> WorkflowRun:
    return WorkflowRun.objects.create(tenant=world.acme, workflow_name=name, environment_name="lab", phase=phase,
                                      finished_at=fields.pop("finished_at", timezone.now()), **fields)


@pytest.mark.parametrize("member", MEMBERS)
def test_the_archives_hold_ended_runs_and_workflow_runs_only(world: Any, lab: Any, member: str) -> None:
    finished = a_run(world, Phase.FINISHED, steady_state=Run.SteadyState.HELD,
                     experiment=host_experiment(world.acme, "done"))
    refused = a_run(world, Phase.REFUSED, experiment=host_experiment(world.acme, "refused-one"))
    active = a_run(world, Phase.RUNNING, experiment=host_experiment(world.acme, "still-going"))
    succeeded = a_workflow_run(world, "game-day", WorkflowRun.Phase.SUCCEEDED)
    running_wr = a_workflow_run(world, "ongoing-day", WorkflowRun.Phase.RUNNING, finished_at=None)
    response = signed_in(world.member(member)).get("/t/acme/archives/")
    assert response.status_code == 200
    body = text(response)
    shown = re.findall(r'data-archived="([0-9a-f-]+)" data-type="(\w+)"', body)
    assert shown[0] == (str(succeeded.uuid), "workflow")  # the last to end first
    assert set(shown) == {(str(finished.uuid), "run"), (str(refused.uuid), "run"), (str(succeeded.uuid), "workflow")}
    assert str(active.uuid) not in body and str(running_wr.uuid) not in body
    assert f'href="/t/acme/runs/{finished.uuid}/"' in body
    assert f'href="/t/acme/workflow-runs/{succeeded.uuid}/"' in body
    assert 'rn-steady-held">held<' in body
    assert "<button type=\"submit\">Filter</button>" in body and "Stop</button>" not in body


def test_the_archives_filter_by_type_outcome_name_environment_dry_run_and_steady_state(world: Any, lab: Any) -> None:
    held = a_run(world, Phase.FINISHED, steady_state="held", experiment=host_experiment(world.acme, "cart-cpu"))
    broken = a_run(world, Phase.FAILED, steady_state="broken", experiment=host_experiment(world.acme, "cart-io"))
    dry = a_run(world, Phase.FINISHED, dry_run=True, experiment=host_experiment(world.acme, "search"))
    aborted = a_workflow_run(world, "cart-day", WorkflowRun.Phase.ABORTED)
    succeeded = a_workflow_run(world, "other-day", WorkflowRun.Phase.SUCCEEDED, dry_run=True)
    client = signed_in(world.viewer)

    def shown(query: str) -> set[str]:
        return set(re.findall(r'data-archived="([0-9a-f-]+)"', text(client.get(f"/t/acme/archives/?{query}"))))

    def ids(*rows: Any) -> set[str]:
        return {str(r.uuid) for r in rows}

    assert shown("what=runs") == ids(held, broken, dry)
    assert shown("what=workflows") == ids(aborted, succeeded)
    assert shown("outcome=failed&outcome=aborted") == ids(broken, aborted)
    assert shown("name=CART") == ids(held, broken, aborted)
    assert shown("dry_run=true") == ids(dry, succeeded)
    assert shown("steady_state=broken") == ids(broken)
    assert shown("steady_state=none") == ids(dry)
    assert shown("environment=lab") == ids(held, broken, dry, aborted, succeeded)
    assert shown("environment=elsewhere") == set()
    body = text(client.get("/t/acme/archives/?name=nothing-like-it"))
    assert "Nothing archived matches these filters" in body
    body = text(client.get("/t/acme/archives/?outcome=exploded"))
    assert "Fix the filters above" in body and "data-archived=" not in body


def test_the_archives_say_what_to_do_when_empty(world: Any, lab: Any) -> None:
    a_run(world, Phase.RUNNING)  # active: not archived
    body = text(signed_in(world.viewer).get("/t/acme/archives/"))
    assert "Nothing archived yet" in body and "data-archived=" not in body


def test_the_archives_page_through_both_kinds_of_run(world: Any, lab: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(runs_pages, "PAGE_SIZE", 2)
    now = timezone.now()
    experiment = host_experiment(world.acme, "paged")
    oldest = a_run(world, Phase.FINISHED, experiment=experiment, finished_at=now - timedelta(minutes=5))
    a_workflow_run(world, "w1", WorkflowRun.Phase.SUCCEEDED, finished_at=now - timedelta(minutes=4))
    a_run(world, Phase.FAILED, experiment=experiment, finished_at=now - timedelta(minutes=3))
    a_workflow_run(world, "w2", WorkflowRun.Phase.FAILED, finished_at=now - timedelta(minutes=2))
    a_run(world, Phase.FINISHED, experiment=experiment, finished_at=now - timedelta(minutes=1))
    client = signed_in(world.viewer)
    first = text(client.get("/t/acme/archives/?what="))
    assert "Page 1 of 3" in first and 'href="?page=2"' in first  # an empty filter is left out of the links
    last = text(client.get("/t/acme/archives/?page=3"))
    assert re.findall(r'data-archived="([0-9a-f-]+)"', last) == [str(oldest.uuid)]


def test_the_archives_link_to_workflow_runs_even_before_that_page_exists(world: Any) -> None:
    from django.urls import NoReverseMatch

    import experiments.portal.runs as module

    def missing(*args: Any, **kwargs: Any) -> str:
        raise NoReverseMatch("not yet")

    original = module.reverse
    try:
        module.reverse = missing
        assert module.workflow_run_url("acme", "1234") == "/t/acme/workflow-runs/1234/"
    finally:
        module.reverse = original


def test_duration_text_reads_like_a_person_wrote_it() -> None:
    assert runs_pages.duration_text(None) == "—"
    assert runs_pages.duration_text(45.7) == "45 s"
    assert runs_pages.duration_text(125) == "2 min 05 s"
    assert runs_pages.duration_text(3780) == "1 h 03 min"
