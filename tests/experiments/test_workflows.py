"""The workflow engine (experiments.workflows) and status checks (experiments.checking) step by step,
with the real database, simulated agents behind the real Redis relay, and a real HTTP server for the
checks to probe. Tasks are not published (no commit in these transactions): the steps a worker would
take are called here. The same with a real worker, gateway and agent: test_workflows_e2e.py."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from experiments import checking, runs, scheduling, services, workflows
from experiments.models import CheckRun, Event, Run, Schedule, WorkflowNode, WorkflowRun
from tenants.actors import Actor
from tenants.models import AuditEntry
from tests.fakes.prometheus import FakePrometheus

from .checkserver import check_server, http_check
from .runs_harness import SYSTEM, host_experiment, hosts_environment, simulated

pytestmark = pytest.mark.django_db
NPhase, WPhase = WorkflowNode.Phase, WorkflowRun.Phase


@pytest.fixture
def redis_url(settings: Any) -> str:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    settings.RUN_RETRY_BASE_SECONDS = 0.01
    settings.HALT_WAIT_SECONDS = 3.0
    return settings.REDIS_URL


def stress(name: str, deadline: str | None = None, duration: str = "60s") -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": name, "templateType": "PhysicalMachineChaos",
        "physicalmachineChaos": {"action": "stress-cpu", "mode": "all", "selector": {}, "duration": duration,
                                 "stress-cpu": {"load": 10, "workers": 1}},
    }
    if deadline:
        template["deadline"] = deadline
    return template


def workflow(world: Any, entry: str, *templates: dict[str, Any], name: str = "flow") -> Any:
    return services.save_workflow(SYSTEM, world.acme, {"name": name, "spec": {"entry": entry,
                                                                             "templates": list(templates)}})


def nodes(wr: WorkflowRun) -> dict[str, str]:
    return dict(WorkflowNode.objects.filter(workflow_run=wr).values_list("name", "phase"))


def node(wr: WorkflowRun, name: str) -> WorkflowNode:
    return WorkflowNode.objects.get(workflow_run=wr, name=name)


def node_run(wr: WorkflowRun, name: str) -> Run:
    return Run.objects.get(workflow_node=node(wr, name))


def settle(run: Run) -> None:
    """What the worker does with a run of a node: inject it, and tell the engine when it ended."""
    runs.inject(run.pk)
    run.refresh_from_db()
    if run.phase in Run.ENDED:
        workflows.on_run_ended(run.pk)


def expire_node(wr: WorkflowRun, name: str) -> None:
    """Move a node's deadline to now, as time passing would."""
    WorkflowNode.objects.filter(workflow_run=wr, name=name).update(deadline=timezone.now() - timedelta(seconds=1))
    workflows.advance(wr.pk)


def test_serial_suspend_and_parallel_run_in_order_with_deadlines_passed_down(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    flow = workflow(
        world, "main",
        {"name": "main", "templateType": "Serial", "deadline": "10m", "children": ["first", "pause", "both"]},
        stress("first", deadline="3s"),
        {"name": "pause", "templateType": "Suspend", "deadline": "1s"},
        {"name": "both", "templateType": "Parallel", "children": ["left", "right"]},
        stress("left", deadline="1h"), stress("right"),
    )
    with simulated(env, redis_url):
        wr = workflows.start_workflow(Actor(user=world.operator.user), flow, "lab", dry_run=True)
        workflows.advance(wr.pk)
        assert nodes(wr) == {"main": "running", "first": "running", "pause": "pending", "both": "pending",
                             "left": "pending", "right": "pending"}
        main, first = node(wr, "main"), node(wr, "first")
        assert first.deadline == first.started_at + timedelta(seconds=3)
        first_run = node_run(wr, "first")
        assert first_run.origin == Run.Origin.WORKFLOW and first_run.duration_seconds == pytest.approx(3, abs=0.5)

        settle(first_run)  # a dry run ends at once
        assert nodes(wr)["first"] == "succeeded" and nodes(wr)["pause"] == "running"
        assert nodes(wr)["both"] == "pending"
        expire_node(wr, "pause")
        assert nodes(wr)["both"] == "running" and nodes(wr)["left"] == nodes(wr)["right"] == "running"
        # A child's deadline is never later than its parent's: main's 10 minutes bound left's hour.
        assert node(wr, "left").deadline == main.deadline
        settle(node_run(wr, "left"))
        assert WorkflowRun.objects.get(pk=wr.pk).phase == WPhase.RUNNING
        settle(node_run(wr, "right"))

    wr.refresh_from_db()
    assert wr.phase == WPhase.SUCCEEDED and set(nodes(wr).values()) == {"succeeded"}
    order = list(Event.objects.filter(workflow_run=wr, reason="NodeStarted").order_by("id")
                 .values_list("object_id", flat=True))
    assert order == ["main", "main/first", "main/pause", "main/both", "main/both/left", "main/both/right"]
    assert AuditEntry.objects.filter(action="workflowrun.start").count() == 1


def test_abort_stops_every_node_and_recovers_every_fault_at_once(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    flow = workflow(world, "both", {"name": "both", "templateType": "Parallel", "children": ["a", "b", "later"]},
                    stress("a"), stress("b"), {"name": "later", "templateType": "Serial", "children": ["wait", "c"]},
                    {"name": "wait", "templateType": "Suspend", "deadline": "1h"}, stress("c"))
    with simulated(env, redis_url) as sim:
        wr = workflows.start_workflow(SYSTEM, flow, "lab", dry_run=False)
        workflows.advance(wr.pk)
        for name in ("a", "b"):
            runs.inject(node_run(wr, name).pk)
        assert len([f for held in sim.all_held().values() for f in held]) == 4  # two runs on two agents

        with pytest.raises(PermissionDenied):
            workflows.abort(Actor(user=world.viewer.user), wr)
        assert workflows.abort(Actor(user=world.operator.user), wr)
        assert sim.all_held() == {}  # recovered in the call, not behind a queue

    wr.refresh_from_db()
    assert wr.phase == WPhase.ABORTED and "aborted by" in wr.message
    assert nodes(wr) == {"both": "aborted", "a": "aborted", "b": "aborted", "later": "aborted", "wait": "aborted",
                         "c": "skipped"}
    assert set(Run.objects.filter(workflow_node__workflow_run=wr).values_list("phase", flat=True)) == {"finished"}
    assert not workflows.abort(SYSTEM, wr)  # once
    assert AuditEntry.objects.filter(action="workflowrun.abort").count() == 1


def test_a_halt_aborts_the_tenants_workflows_first(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=1)
    flow = workflow(world, "s", {"name": "s", "templateType": "Serial", "children": ["a", "b"]}, stress("a"),
                    stress("b"))
    with simulated(env, redis_url) as sim:
        wr = workflows.start_workflow(SYSTEM, flow, "lab", dry_run=False)
        workflows.advance(wr.pk)
        runs.inject(node_run(wr, "a").pk)
        runs.halt(Actor(user=world.operator.user), world.acme)
        assert sim.all_held() == {}
    assert WorkflowRun.objects.get(pk=wr.pk).phase == WPhase.ABORTED
    assert nodes(wr)["b"] == "skipped" and not Run.objects.filter(workflow_node__name="b").exists()


def test_a_failing_check_with_abort_aborts_the_workflow_and_without_it_fails_only_its_node(
    world: Any, redis_url: str
) -> None:
    env = hosts_environment(world.acme, agents=1)
    with check_server() as server, simulated(env, redis_url) as sim:
        server.status = 503
        guarded = workflow(
            world, "p", {"name": "p", "templateType": "Parallel", "children": ["fault", "check"]}, stress("fault"),
            {"name": "check", "templateType": "StatusCheck", "abortWithStatusCheck": True,
             "statusCheck": http_check(server.url)}, name="guarded",
        )
        wr = workflows.start_workflow(SYSTEM, guarded, "lab", dry_run=False)
        workflows.advance(wr.pk)
        runs.inject(node_run(wr, "fault").pk)
        assert sim.all_held()
        check = CheckRun.objects.get(workflow_node__workflow_run=wr)
        assert checking.probe_once(check.pk) is None  # one failure: failureThreshold 1
        assert sim.all_held() == {}
        wr.refresh_from_db()
        assert wr.phase == WPhase.ABORTED and "status check guarded/check failed" in wr.message
        assert "HTTP 503" in wr.message
        result = check.results.get()
        assert not result.ok and result.latency_ms > 0

        unguarded = workflow(
            world, "s", {"name": "s", "templateType": "Serial", "children": ["check", "after"]},
            {"name": "check", "templateType": "StatusCheck", "statusCheck": http_check(server.url)},
            {"name": "after", "templateType": "Suspend", "deadline": "1s"}, name="unguarded",
        )
        wr2 = workflows.start_workflow(SYSTEM, unguarded, "lab", dry_run=False)
        workflows.advance(wr2.pk)
        checking.probe_once(CheckRun.objects.get(workflow_node__workflow_run=wr2).pk)
        workflows.advance(wr2.pk)
        assert nodes(wr2) == {"s": "running", "check": "failed", "after": "running"}
        expire_node(wr2, "after")
    wr2.refresh_from_db()
    assert wr2.phase == WPhase.FAILED and "s/check" in wr2.message


def test_a_steady_state_that_does_not_hold_refuses_the_run_before_any_fault(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=1)
    experiment = host_experiment(world.acme)
    with check_server() as server, simulated(env, redis_url) as sim:
        experiment = services.update_experiment(SYSTEM, experiment, {"status_checks": [
            {"name": "shop", "spec": http_check(server.url), "abort": True}]})
        server.status = 500
        run = runs.start_run(SYSTEM, experiment, "lab")
        runs.inject(run.pk)
        run.refresh_from_db()
        assert run.phase == Run.Phase.REFUSED and "steady state does not hold" in run.message
        assert not run.injections.exists() and sim.all_held() == {}
        checking.after_run(run.pk)
        assert Run.objects.get(pk=run.pk).steady_state == Run.SteadyState.BROKEN

        server.status = 200
        run = runs.start_run(SYSTEM, experiment, "lab")
        runs.inject(run.pk)
        run.refresh_from_db()
        assert run.phase == Run.Phase.RUNNING and sim.all_held()
        during = CheckRun.objects.get(run=run, purpose=CheckRun.Purpose.DURING)
        assert during.abort and during.ends_at == run.deadline
        assert checking.probe_once(during.pk) is not None  # healthy: probe again in a second

        server.status = 503  # the service breaks under the fault: the run is stopped and recovered now
        assert checking.probe_once(during.pk) is None
        assert sim.all_held() == {}
        run.refresh_from_db()
        assert run.phase == Run.Phase.FINISHED and "status check shop failed" in run.message
        server.status = 200
        assert checking.after_run(run.pk) == Run.SteadyState.BROKEN
    kinds = list(CheckRun.objects.filter(run=run).values_list("purpose", "phase"))
    assert kinds == [("before", "succeeded"), ("during", "failed"), ("after", "succeeded")]


def test_a_continuous_check_keeps_only_its_newest_results(world: Any) -> None:
    with check_server() as server:
        check = checking.create(world.acme.pk, "c", http_check(server.url, mode="Continuous", duration="1h",
                                                               recordsHistoryLimit=3), CheckRun.Purpose.STANDALONE)
        for _ in range(5):
            assert checking.probe_once(check.pk) is not None
    assert check.results.count() == 3 and CheckRun.objects.get(pk=check.pk).probes == 5


def test_bad_steady_state_checks_are_refused_naming_the_field(world: Any) -> None:
    experiment = host_experiment(world.acme)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        experiment = services.update_experiment(SYSTEM, experiment, {"status_checks": [
            {"name": "x", "spec": {"type": "HTTP", "http": {"url": "ftp://x", "criteria": {"statusCode": "200"}}}},
            {"spec": {}, "abort": "yes"}]})
    fields = set(error.value.message_dict)
    assert {"status_checks[0].spec.http.url", "status_checks[1].name", "status_checks[1].abort"} <= fields
    experiment.refresh_from_db()
    assert experiment.status_checks == []


def test_a_prometheus_check_node_follows_its_query(world: Any, redis_url: str) -> None:
    """The StatusCheck node asks a local emulator of the Prometheus query API (tests/fakes/prometheus.py)."""
    env = hosts_environment(world.acme, agents=1)
    with FakePrometheus() as prometheus, simulated(env, redis_url):
        prometheus.set_value(0.02, __name__="error_ratio", job="shop")
        flow = workflow(world, "slo", {"name": "slo", "templateType": "StatusCheck", "statusCheck": {
            "type": "Prometheus", "intervalSeconds": 1, "successThreshold": 2, "failureThreshold": 1,
            "prometheus": {"server": prometheus.url, "query": 'error_ratio{job="shop"}', "comparison": "<",
                           "threshold": 0.05}}})
        wr = workflows.start_workflow(SYSTEM, flow, "lab", dry_run=False)
        workflows.advance(wr.pk)
        check = CheckRun.objects.get(workflow_node__workflow_run=wr)
        assert checking.probe_once(check.pk) is not None  # one success of the two it needs
        assert checking.probe_once(check.pk) is None
        workflows.advance(wr.pk)
        assert prometheus.queries == ['error_ratio{job="shop"}'] * 2
    wr.refresh_from_db()
    assert wr.phase == WPhase.SUCCEEDED and nodes(wr) == {"slo": "succeeded"}
    assert [r.ok for r in check.results.all()] == [True, True]


def test_a_schedule_node_fires_its_chaos_until_its_deadline(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=1)
    flow = workflow(world, "repeat", {"name": "repeat", "templateType": "Schedule", "deadline": "1h", "schedule": {
        "schedule": "@every 2s", "type": "PhysicalMachineChaos", "concurrencyPolicy": "Allow",
        "physicalmachineChaos": {"action": "stress-cpu", "mode": "all", "selector": {}, "duration": "10m",
                                 "stress-cpu": {"load": 10, "workers": 1}}}})
    with simulated(env, redis_url) as sim:
        wr = workflows.start_workflow(SYSTEM, flow, "lab", dry_run=False)
        workflows.advance(wr.pk)
        owned = Schedule.objects.get(workflow_node__workflow_run=wr)
        assert owned.environment == env and owned.next_fire_at is not None
        claimed = scheduling.sweep(owned.next_fire_at, publish=False)
        assert claimed == [(owned.pk, owned.next_fire_at)]
        assert scheduling.fire(*claimed[0]) == "fired"
        run = Run.objects.get(schedule=owned)
        assert run.workflow_node == node(wr, "repeat") and run.experiment_name == "flow/repeat"
        assert run.duration_seconds <= 3600  # the node's deadline bounds the chaos's 10 minutes
        runs.inject(run.pk)
        assert sim.all_held()

        expire_node(wr, "repeat")  # the deadline: its schedule goes, its run is stopped
        assert not Schedule.objects.filter(pk=owned.pk).exists()
        runs.recover(run.pk)
        assert sim.all_held() == {}
        workflows.on_run_ended(run.pk)
    wr.refresh_from_db()
    assert wr.phase == WPhase.SUCCEEDED and nodes(wr) == {"repeat": "succeeded"}
