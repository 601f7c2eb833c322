"""Schedules and workflows end to end, all real: PostgreSQL, a Celery worker with beat (the
django-celery-beat DatabaseScheduler sweeping the schedules), Redis, the TLS gateway, the real agent
(root, real iptables and stress-ng) in a hosts environment whose faults land in the lab's network
namespace, and a real HTTP server for the status check. The lab fixture fails a test that leaves a
rule, a namespace or a process behind.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from experiments import services, workflows
from experiments.models import CheckResult, Event, Run, Schedule, WorkflowNode, WorkflowRun
from injector.drivers import agent as agent_api
from injector.models import Agent
from tenants.actors import Actor
from tests.conftest import client_for
from tests.experiments.checkserver import check_server
from tests.experiments.platform_harness import PORT, Platform, T, cut, partition
from tests.injector.gateway_harness import wait_until
from tests.nodeagent.netns import Lab, needs_root

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_root]
WPhase = WorkflowRun.Phase


def host_fault(name: str, action: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "templateType": "PhysicalMachineChaos", **extra, "physicalmachineChaos": {
        "action": action, "mode": "all", "selector": {"agents": ["e2e"]}, action: params}}


def node_events(wr: WorkflowRun) -> dict[str, dict[str, datetime]]:
    """Per node path: when it started and ended, from the workflow run's events."""
    out: dict[str, dict[str, datetime]] = {}
    for reason, path, at in Event.objects.filter(workflow_run=wr, object_type="workflownode").values_list(
            "reason", "object_id", "created_at"):
        out.setdefault(path, {})["start" if reason == "NodeStarted" else "end"] = at
    return out


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def wait_workflow(wr: WorkflowRun, *phases: str, timeout: float = 40.0) -> WorkflowRun:
    def now_phase() -> str:
        return WorkflowRun.objects.get(pk=wr.pk).phase

    wait_until(lambda: now_phase() in phases, timeout=timeout,
               what=f"workflow run to be {phases} (it is {now_phase()}; nodes: "
                    f"{dict(WorkflowNode.objects.filter(workflow_run=wr).values_list('path', 'phase'))})")
    return WorkflowRun.objects.get(pk=wr.pk)


def test_an_every_two_seconds_schedule_fires_on_time_and_stops_when_paused(
    platform: Platform, world: Any, lab: Lab
) -> None:
    experiment = partition(world, lab, "30s")
    operator = client_for(world.operator)
    response = operator.post(f"{T}/schedules/", {
        "name": "often", "cron": "@every 2s", "experiment": "cut", "environment": "lab", "dry_run": True,
    }, format="json")
    assert response.status_code == 201, response.json()
    schedule = Schedule.objects.get(uuid=response.json()["id"])
    wait_until(lambda: Run.objects.filter(schedule=schedule).count() >= 3, timeout=15,
               what="three runs of the schedule")
    made = list(Run.objects.filter(schedule=schedule).order_by("created_at"))[:3]
    lateness = [seconds(schedule.created_at + timedelta(seconds=2 * k), run.created_at)
                for k, run in enumerate(made, start=1)]
    print(f"runs started {', '.join(f'{x * 1000:.0f}' for x in lateness)} ms after their ticks")
    for k, (late, run) in enumerate(zip(lateness, made, strict=True), start=1):
        assert -0.05 <= late < 1.0, f"run {k} started {late:.3f} s after its tick"
        assert run.dry_run and run.origin == Run.Origin.SCHEDULE and str(run.experiment.uuid) == experiment
    assert lab.connects(lab.path_a, lab.ip_b, PORT)  # dry runs: nothing was cut

    assert operator.post(f"{T}/schedules/{schedule.uuid}/pause/").status_code == 200
    time.sleep(0.5)  # a tick already claimed before the pause is dropped by the tick itself
    count = Run.objects.filter(schedule=schedule).count()
    time.sleep(4.5)
    assert Run.objects.filter(schedule=schedule).count() == count
    assert operator.get(f"{T}/schedules/{schedule.uuid}/").json()["next_fire_times"] == []


def test_a_workflow_runs_its_nodes_in_order_on_the_real_agent(platform: Platform, world: Any, lab: Lab) -> None:
    operator = Actor(user=world.operator.user)
    flow = services.save_workflow(operator, world.acme, {"name": "game-day", "spec": {"entry": "main", "templates": [
        {"name": "main", "templateType": "Serial", "children": ["cut", "breathe", "both"]},
        host_fault("cut", "network-partition", {"device": "veth0", "ip-address": lab.ip_b, "direction": "to"},
                   deadline="3s"),
        {"name": "breathe", "templateType": "Suspend", "deadline": "1s"},
        {"name": "both", "templateType": "Parallel", "deadline": "3s", "children": ["lossy", "busy"]},
        host_fault("lossy", "network-loss", {"percent": "50", "ip-address": lab.ip_b, "device": "veth0"}),
        host_fault("busy", "stress-cpu", {"load": 20, "workers": 1}),
    ]}})
    wr = workflows.start_workflow(operator, flow, "lab", dry_run=False)

    wait_until(lambda: cut(lab), timeout=10, what="the partition node to cut the service")
    wr = wait_workflow(wr, WPhase.SUCCEEDED, WPhase.FAILED)
    assert wr.phase == WPhase.SUCCEEDED, wr.message
    assert lab.connects(lab.path_a, lab.ip_b, PORT)

    t = node_events(wr)
    cut_window = seconds(t["main/cut"]["start"], t["main/cut"]["end"])
    pause_window = seconds(t["main/breathe"]["start"], t["main/breathe"]["end"])
    assert 3.0 <= cut_window < 4.5, cut_window  # its deadline, then the recovery
    assert 1.0 <= pause_window < 2.0, pause_window
    assert t["main/cut"]["end"] <= t["main/breathe"]["start"] <= t["main/cut"]["end"] + timedelta(seconds=0.5)
    assert t["main/breathe"]["end"] <= t["main/both"]["start"] <= t["main/breathe"]["end"] + timedelta(seconds=0.5)
    starts = [t["main/both/lossy"]["start"], t["main/both/busy"]["start"]]
    assert abs(seconds(*starts)) < 0.5  # side by side
    for path in ("main/both/lossy", "main/both/busy"):
        assert 3.0 <= seconds(t[path]["start"], t[path]["end"]) < 5.0, (path, t[path])
    kinds = {r.experiment_name: r for r in Run.objects.filter(workflow_node__workflow_run=wr)}
    assert set(kinds) == {"game-day/cut", "game-day/lossy", "game-day/busy"}
    assert {r.phase for r in kinds.values()} == {Run.Phase.FINISHED}
    assert all(i.state == "recovered" for r in kinds.values() for i in r.injections.all())
    assert agent_api.list_faults(Agent.objects.get(name="e2e")).faults == ()


def test_a_continuous_check_that_starts_failing_aborts_and_every_fault_is_gone_within_two_seconds(
    platform: Platform, world: Any, lab: Lab
) -> None:
    operator = Actor(user=world.operator.user)
    with check_server() as server:
        flow = services.save_workflow(operator, world.acme, {"name": "guarded", "spec": {"entry": "p", "templates": [
            {"name": "p", "templateType": "Parallel", "deadline": "60s", "children": ["cut", "busy", "shop"]},
            host_fault("cut", "network-partition", {"device": "veth0", "ip-address": lab.ip_b, "direction": "to"}),
            host_fault("busy", "stress-cpu", {"load": 20, "workers": 1}),
            {"name": "shop", "templateType": "StatusCheck", "abortWithStatusCheck": True, "statusCheck": {
                "type": "HTTP", "mode": "Continuous", "duration": "60s", "intervalSeconds": 1, "timeoutSeconds": 1,
                "failureThreshold": 2, "http": {"url": server.url, "criteria": {"statusCode": "200-299"}}}},
        ]}})
        wr = workflows.start_workflow(operator, flow, "lab", dry_run=False)
        wait_until(lambda: cut(lab), timeout=10, what="the partition")
        wait_until(lambda: CheckResult.objects.filter(check_run__workflow_node__workflow_run=wr, ok=True).count() >= 2,
                   timeout=10, what="two passing probes")
        assert WorkflowRun.objects.get(pk=wr.pk).phase == WPhase.RUNNING

        server.status = 503
        wait_until(lambda: lab.connects(lab.path_a, lab.ip_b, PORT, timeout=0.1), timeout=10,
                   what="the abort to heal the partition")
        healed = timezone.now()
    wr = wait_workflow(wr, WPhase.ABORTED, timeout=10)
    failures = list(CheckResult.objects.filter(check_run__workflow_node__workflow_run=wr, ok=False).order_by("at"))
    assert len(failures) == 2 and "HTTP 503" in failures[-1].detail
    crossed = failures[-1].at  # the second failure in a row: failureThreshold 2
    print(f"every fault gone {seconds(crossed, healed) * 1000:.0f} ms after the threshold was crossed")
    assert seconds(crossed, healed) < 2.0, f"healed {seconds(crossed, healed):.2f} s after the threshold"
    wait_until(lambda: not Run.objects.filter(workflow_node__workflow_run=wr).exclude(phase="finished").exists(),
               timeout=5, what="every run of the workflow to finish recovering")
    assert "status check guarded/shop failed" in wr.message
    assert agent_api.list_faults(Agent.objects.get(name="e2e")).faults == ()
    assert set(WorkflowNode.objects.filter(workflow_run=wr).values_list("phase", flat=True)) == {"aborted"}
