"""The live parts of the schedules and workflows pages in a real browser (static/js/workflows.js): a
workflow run's nodes follow the database without a reload, the schedule form previews its cron as you
type, and the step-by-step form adds rows. No worker runs here: the tests change the rows themselves."""
from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from experiments import services, workflows
from experiments.models import Schedule, Workflow, WorkflowNode, WorkflowRun
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal import test_browser
from tests.portal.test_browser import CHROMIUM, sign_in

# The shared browser fixtures, under their own names (tests take them as arguments).
page, portal_server = test_browser.page, test_browser.portal_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (make test installs it)"),
]

STRESS = {"action": "stress-cpu", "mode": "all", "selector": {}, "duration": "60s",
          "stress-cpu": {"load": 10, "workers": 1}}
SPEC = {"entry": "main", "templates": [
    {"name": "main", "templateType": "Serial", "deadline": "10m", "children": ["cpu", "rest"]},
    {"name": "cpu", "templateType": "PhysicalMachineChaos", "deadline": "2m", "physicalmachineChaos": STRESS},
    {"name": "rest", "templateType": "Suspend", "deadline": "30s"},
]}


def has_state(phase: str) -> Any:
    return re.compile(rf"(^|\s)state-{phase}(\s|$)")


def test_a_workflow_runs_nodes_follow_the_database_without_a_reload(world: Any, portal_server: Any,
                                                                     page: Any) -> None:
    from playwright.sync_api import expect

    env = hosts_environment(world.acme)
    flow = services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": SPEC})
    wr = workflows.start_workflow(SYSTEM, flow, env, dry_run=True)
    workflows.advance(wr.pk)  # what the worker would do: main and cpu start
    live_requests: list[float] = []
    page.on("request", lambda r: live_requests.append(time.monotonic()) if r.url.endswith("/live/") else None)

    sign_in(page, portal_server.url, "alice")
    page.goto(f"{portal_server.url}/t/acme/workflow-runs/{wr.uuid}/")
    cpu, rest = page.locator('[data-path="main/cpu"]'), page.locator('[data-path="main/rest"]')
    expect(cpu).to_have_class(has_state("running"))
    expect(rest).to_have_class(has_state("pending"))
    page.evaluate("window.notReloaded = true")

    now = timezone.now()
    WorkflowNode.objects.filter(workflow_run=wr, path="main/cpu").update(phase="succeeded", finished_at=now,
                                                                         message="recovered on every host")
    WorkflowNode.objects.filter(workflow_run=wr, path="main/rest").update(
        phase="running", started_at=now, deadline=now + timedelta(seconds=30))

    expect(cpu).to_have_class(has_state("succeeded"), timeout=5000)
    expect(cpu.locator(":scope > .wf-box .wf-phase")).to_have_text("succeeded")
    expect(cpu.locator(":scope > .wf-box .wf-message")).to_have_text("recovered on every host")
    expect(rest).to_have_class(has_state("running"))
    expect(rest.locator(":scope > .wf-box .wf-started time")).to_have_text(f"{now:%H:%M:%S}")
    expect(rest.locator(":scope > .wf-box .wf-until")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True

    # The run ends: the page says so, hides Abort, and stops asking.
    WorkflowNode.objects.filter(workflow_run=wr).update(phase="succeeded", finished_at=now)
    WorkflowRun.objects.filter(pk=wr.pk).update(phase="succeeded", finished_at=now, message="every node succeeded")
    expect(page.locator("[data-wr-phase]")).to_have_text("succeeded", timeout=5000)
    expect(page.locator("[data-wr-message]")).to_have_text("every node succeeded")
    expect(page.locator("[data-ended-note]")).to_be_visible()
    expect(page.get_by_text("Abort…")).to_be_hidden()
    expect(rest).to_have_class(has_state("succeeded"))
    asked = len(live_requests)
    page.wait_for_timeout(2500)
    assert len(live_requests) == asked
    assert page.evaluate("window.notReloaded") is True


def test_the_schedule_form_previews_the_cron_as_you_type(world: Any, portal_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    hosts_environment(world.acme)
    host_experiment(world.acme, "cpu")
    sign_in(page, portal_server.url, "bob")
    page.goto(f"{portal_server.url}/t/acme/schedules/new/")
    words, error, ticks = page.locator(".cron-words"), page.locator(".cron-error"), page.locator(".cron-next li")

    page.fill("#id_cron", "*/5 * * * *")
    expect(words).to_have_text("Fires every 5 minutes.")
    expect(ticks).to_have_count(5)
    expect(ticks.first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d[05]:00 UTC$"))

    page.fill("#id_cron", "61 * * * *")
    expect(error).to_have_text("'61' is out of range for minute (0-59)")
    expect(page.locator(".cron-next")).to_be_hidden()

    page.fill("#id_cron", "0 10 * * 1-5")
    page.fill("#id_time_zone", "Nowhere/Special")
    expect(error).to_have_text("'Nowhere/Special' is not a time zone")
    page.fill("#id_time_zone", "Europe/Berlin")
    expect(words).to_have_text("Fires at 10:00 on Monday through Friday (Europe/Berlin).")
    expect(error).to_be_hidden()
    expect(ticks).to_have_count(5)
    expect(ticks.first).to_have_text(re.compile(r" 0[89]:00:00 UTC$"))

    page.fill("#id_name", "weekday-cpu")
    page.select_option("#id_target", "experiment:cpu")
    page.select_option("#id_environment", "lab")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("h1")).to_have_text("Schedule weekday-cpu")
    assert Schedule.objects.get(name="weekday-cpu").time_zone == "Europe/Berlin"


def test_steps_are_added_without_a_reload_and_all_of_them_are_saved(world: Any, portal_server: Any,
                                                                      page: Any) -> None:
    host_experiment(world.acme, "cpu")
    sign_in(page, portal_server.url, "bob")
    page.goto(f"{portal_server.url}/t/acme/workflows/new/")
    steps = page.locator(".wf-steps > li")
    assert steps.count() == 3
    page.get_by_role("button", name="Add a step").click()
    assert steps.count() == 4
    page.fill("#id_name", "four-steps")
    for index, (kind, deadline) in enumerate([("experiment", "1m"), ("suspend", "10s"), ("experiment", "1m"),
                                              ("suspend", "5s")]):
        page.select_option(f"#id_step-{index}-kind", kind)
        if kind == "experiment":
            page.select_option(f"#id_step-{index}-experiment", "cpu")
        page.fill(f"#id_step-{index}-deadline", deadline)
    page.locator("#from-steps").get_by_role("button", name="Create workflow").click()
    page.locator("h1", has_text="Workflow four-steps").wait_for()
    children = Workflow.objects.get(name="four-steps").spec["templates"][0]["children"]
    assert children == ["cpu", "suspend-2", "cpu-2", "suspend-4"]
    assert page.locator(".wf-tree [data-path]").count() == 5


def test_the_workflow_run_page_fits_a_phone(world: Any, portal_server: Any, page: Any) -> None:
    env = hosts_environment(world.acme)
    flow = services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": SPEC})
    wr = workflows.start_workflow(SYSTEM, flow, env, dry_run=True)
    workflows.advance(wr.pk)
    schedule = services.save_schedule(SYSTEM, world.acme, {"name": "a-rather-long-schedule-name-for-a-phone",
                                                           "cron": "0 3 * * 1-5", "workflow": "flow",
                                                           "environment": "lab"})
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, portal_server.url, "alice")
    for address in (f"/t/acme/workflow-runs/{wr.uuid}/", f"/t/acme/workflows/{flow.uuid}/", "/t/acme/workflows/",
                    "/t/acme/workflows/new/", "/t/acme/schedules/", "/t/acme/schedules/new/",
                    f"/t/acme/schedules/{schedule.uuid}/", "/t/acme/events/"):
        page.goto(portal_server.url + address)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{address} is {width} px wide"
