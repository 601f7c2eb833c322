"""Every main page of the portal at 1280 px and at 390 px (a phone), in Chromium against a live server:
it answers, says what it is, and never makes the whole page scroll sideways (wide tables scroll in
their own box). The pages hold real rows made through the services: experiments, a run with its
targets and events, a schedule, a workflow and a workflow run."""
from __future__ import annotations

from typing import Any

import pytest

from experiments import runs, services, workflows
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal.test_browser import page, portal_server, sign_in  # noqa: F401 - the fixtures

pytestmark = [pytest.mark.integration]

WIDTHS = (1280, 390)


def seed(world: Any) -> dict[str, str]:
    hosts_environment(world.acme, agents=3)
    experiment = host_experiment(world.acme, "cpu-burn-with-a-rather-long-name-for-narrow-screens")
    run = runs.start_run(SYSTEM, experiment, "lab", dry_run=True, publish=False)
    runs.inject(run.pk)
    services.save_schedule(SYSTEM, world.acme, {"name": "weekday", "cron": "0 10 * * 1-5", "time_zone":
                                                "Europe/Berlin", "experiment": experiment.name, "environment": "lab"})
    flow = services.save_workflow(SYSTEM, world.acme, {"name": "game-day", "spec": {"entry": "s", "templates": [
        {"name": "s", "templateType": "Serial", "children": ["wait", "burn"]},
        {"name": "wait", "templateType": "Suspend", "deadline": "1h"},
        {"name": "burn", "templateType": "PhysicalMachineChaos", "physicalmachineChaos": {
            "action": "stress-cpu", "mode": "all", "selector": {}, "stress-cpu": {"load": 10, "workers": 1}}}]}})
    wr = workflows.start_workflow(SYSTEM, flow, "lab", dry_run=True)
    workflows.advance(wr.pk)
    return {"experiment": f"experiments/{experiment.uuid}/", "run": f"runs/{run.uuid}/",
            "workflow_run": f"workflow-runs/{wr.uuid}/"}


PATHS = ["", "experiments/", "experiments/new/", "{experiment}", "runs/", "{run}", "archives/", "schedules/",
         "schedules/new/", "workflows/", "workflows/new/", "{workflow_run}", "events/", "environments/",
         "environments/lab/", "settings/", "members/", "tokens/", "audit/"]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_main_page_fits_the_screen(world: Any, portal_server: Any, page: Any, width: int) -> None:  # noqa: F811
    targets = seed(world)
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page, portal_server.url, "alice")
    for path in PATHS:
        url = f"{portal_server.url}/t/acme/{path.format(**targets)}"
        response = page.goto(url)
        assert response is not None and response.status == 200, (path, response and response.status)
        assert page.locator("h1").first.inner_text().strip(), path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} at {width} px scrolls sideways by {overflow} px: {widest(page)}"


def widest(browser_page: Any) -> list[str]:
    """The elements that reach past the right edge (outside boxes that scroll), to say what to fix."""
    return browser_page.evaluate("""() => {
        const scrolls = e => { for (let a = e.parentElement; a; a = a.parentElement) {
            if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return true; } return false; };
        return [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !scrolls(e))
            .slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')} ${e.id || e.name || ''}`);
    }""")
