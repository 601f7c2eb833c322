"""A run's page in Chromium: it follows the run without a reload (phase, buttons, timeline, targets and
events change in place as the run's rows change in the database) and stops asking once the run has ended.
The rows are changed from the test, as a worker would: no worker or agent runs here."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from experiments import runs
from experiments.models import Injection, Run
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal.test_browser import page, portal_server, sign_in  # noqa: F401 - the fixtures

pytestmark = [pytest.mark.integration]

Phase, State = Run.Phase, Injection.State


def running_run(world: Any, targets: int = 1) -> Run:
    hosts_environment(world.acme, agents=3)
    run = runs.start_run(SYSTEM, host_experiment(world.acme, "cpu"), "lab", publish=False)
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(phase=Phase.RUNNING, started_at=now - timedelta(seconds=5), candidates=3)
    for i in range(targets):
        inject(run, i, now - timedelta(seconds=4))
    return run


def inject(run: Run, i: int, at: Any = None) -> None:
    Injection.objects.create(run=run, fault_id=f"cp-{run.pk}-1-{i}", target_key=f"agent:host-{i}",
                             target_display=f"host-{i} (host-{i}.lab)", state=State.INJECTED,
                             injected_at=at or timezone.now())


def live_requests(page: Any) -> list[str]:  # noqa: F811
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if request.url.endswith("/live/") else None)
    return seen


def test_a_runs_page_follows_the_run_without_a_reload_and_stops_when_it_ends(
    world: Any, portal_server: Any, page: Any  # noqa: F811
) -> None:
    run = running_run(world, targets=1)
    base = portal_server.url
    sign_in(page, base, "bob")
    polls = live_requests(page)
    page.goto(f"{base}/t/acme/runs/{run.uuid}/")
    page.evaluate("window.notReloaded = true")
    root = page.locator(".rn-run")
    assert root.get_attribute("data-rn-polling") == "on"
    assert page.locator("svg.rn-timeline rect.rn-bar").count() == 1
    assert page.get_by_role("button", name="Pause").count() == 1

    # A second target takes the fault: its bar and its row appear.
    inject(run, 1)
    runs.event(run, "Injected", "host-1 joined")
    page.locator('svg.rn-timeline rect.rn-bar[data-target="host-1 (host-1.lab)"]').wait_for()
    page.locator('table.rn-targets tr[data-target="host-1 (host-1.lab)"]').wait_for()
    page.locator('table.rn-events tr[data-reason="Injected"]').wait_for()

    # The run is paused: the phase, the bars and the buttons follow.
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(phase=Phase.PAUSED)
    Injection.objects.filter(run=run).update(state=State.RECOVERED, recovered_at=now)
    page.locator('span[data-rn-phase="paused"]').wait_for()
    page.get_by_role("button", name="Resume").wait_for()
    assert page.get_by_role("button", name="Pause").count() == 0
    assert page.locator("svg.rn-timeline rect.rn-bar-recovered").count() == 2

    # It ends: the page says so and stops asking.
    Run.objects.filter(pk=run.pk).update(phase=Phase.FINISHED, finished_at=timezone.now(), message="stopped by bob")
    page.locator('span[data-rn-phase="finished"]').wait_for()
    page.locator('.rn-run[data-rn-polling="stopped"]').wait_for()
    assert "has ended" in page.locator("[data-rn-live-status]").inner_text()
    assert page.get_by_role("button", name="Resume").count() == 0
    assert "stopped by bob" in page.locator("[data-rn-message]").inner_text()
    assert page.evaluate("window.notReloaded") is True
    asked = len(polls)
    assert asked >= 3
    page.wait_for_timeout(2500)
    assert len(polls) == asked, "the page kept asking after the run ended"


def test_an_ended_runs_page_does_not_poll_and_works_without_script(
    world: Any, portal_server: Any, page: Any  # noqa: F811
) -> None:
    run = running_run(world, targets=2)
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(phase=Phase.FINISHED, finished_at=now)
    Injection.objects.filter(run=run).update(state=State.RECOVERED, recovered_at=now)
    base = portal_server.url
    sign_in(page, base, "carol")
    polls = live_requests(page)
    page.goto(f"{base}/t/acme/runs/{run.uuid}/")
    assert page.locator(".rn-run").get_attribute("data-rn-polling") == "stopped"
    assert page.locator("svg.rn-timeline rect.rn-bar").count() == 2
    assert page.get_by_role("img").first.get_attribute("aria-label").startswith("Timeline of this run")
    page.wait_for_timeout(1500)
    assert polls == []

