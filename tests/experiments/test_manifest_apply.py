"""Chaos Mesh Schedule, Workflow and StatusCheck manifests, imported as they are: applied with
`?environment=`, the schedule ticks against that environment, the workflow starts a run and the status
check runs; imported without one, nothing runs and the schedule waits paused."""
from __future__ import annotations

from typing import Any

import pytest

from experiments.models import CheckRun, Run, Schedule, StatusCheck, Workflow, WorkflowRun

from .runs_harness import hosts_environment

pytestmark = pytest.mark.django_db
T = "/api/v1/tenants/acme"

MANIFEST = """
apiVersion: chaos-mesh.org/v1alpha1
kind: Schedule
metadata: {name: weekday-burn}
spec:
  schedule: "30 10 * * 1-5"
  type: PhysicalMachineChaos
  concurrencyPolicy: Forbid
  historyLimit: 5
  startingDeadlineSeconds: 60
  physicalmachineChaos:
    action: stress-cpu
    mode: one
    selector: {}
    stress-cpu: {load: 20, workers: 1}
    duration: 30s
---
apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata: {name: game-day}
spec:
  entry: main
  templates:
    - name: main
      templateType: Serial
      deadline: 5m
      children: [burn, breathe]
    - name: burn
      templateType: PhysicalMachineChaos
      deadline: 30s
      physicalmachineChaos:
        action: stress-cpu
        mode: all
        selector: {}
        stress-cpu: {load: 10, workers: 1}
    - name: breathe
      templateType: Suspend
      deadline: 10s
---
apiVersion: chaos-mesh.org/v1alpha1
kind: StatusCheck
metadata: {name: shop-up}
spec:
  mode: Synchronous
  type: HTTP
  intervalSeconds: 1
  failureThreshold: 2
  http:
    url: http://127.0.0.1:9/health
    criteria: {statusCode: "200-299"}
"""


def test_applied_they_tick_start_and_run(world: Any, api: Any) -> None:
    hosts_environment(world.acme, agents=1)
    response = api(world.operator).post(f"{T}/manifests/?environment=lab&dry_run=true", MANIFEST,
                                        content_type="application/yaml")
    assert response.status_code == 201, response.json()
    items = {i["type"]: i for i in response.json()["created"]}
    schedule = Schedule.objects.get(tenant=world.acme, name="weekday-burn")
    assert not schedule.paused and schedule.environment.name == "lab" and schedule.dry_run
    assert schedule.next_fire_at is not None and schedule.next_fire_at.minute == 30
    assert (schedule.concurrency_policy, schedule.history_limit, schedule.starting_deadline_seconds) == (
        "Forbid", 5, 60)
    assert schedule.experiment.kind == "PhysicalMachineChaos"

    workflow_run = WorkflowRun.objects.get(uuid=items["workflow"]["run"])
    assert workflow_run.workflow.name == "game-day" and workflow_run.dry_run
    assert workflow_run.origin == Run.Origin.MANIFEST and items["workflow"]["phase"] == "running"
    assert sorted(workflow_run.nodes.values_list("path", flat=True)) == ["main", "main/breathe", "main/burn"]

    check = CheckRun.objects.get(status_check__name="shop-up")
    assert check.purpose == CheckRun.Purpose.STANDALONE and check.phase == CheckRun.Phase.RUNNING


def test_imported_without_an_environment_nothing_runs_and_the_schedule_waits(world: Any, api: Any) -> None:
    response = api(world.operator).post(f"{T}/manifests/", MANIFEST, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    schedule = Schedule.objects.get(tenant=world.acme, name="weekday-burn")
    assert schedule.paused and schedule.environment is None and schedule.next_fire_at is None
    assert Workflow.objects.filter(name="game-day").exists() and not WorkflowRun.objects.exists()
    assert StatusCheck.objects.filter(name="shop-up").exists() and not CheckRun.objects.exists()
    # Once an environment is set and it is resumed, it ticks.
    client = api(world.operator)
    hosts_environment(world.acme, agents=1)
    changed = client.patch(f"{T}/schedules/{schedule.uuid}/", {"environment": "lab", "paused": False}, format="json")
    assert changed.status_code == 200, changed.json()
    assert len(client.get(f"{T}/schedules/{schedule.uuid}/").json()["next_fire_times"]) == 5
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.next_fire_at is not None
