"""The portal end to end, all real: Debian's Chromium driven by Playwright against a live server, on
PostgreSQL, with a Celery worker (and beat) of its own, Redis, the TLS gateway and the real agent
(root) whose host faults land in the lab's network namespaces. What a team does in the portal, checked
in the browser and in the network: the partition a run injects really cuts the lab's service.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from experiments.models import Run
from tenants.models import Membership
from tests.experiments.platform_harness import PORT, Platform, certs, cut, partition, platform, start  # noqa: F401
from tests.injector.gateway_harness import wait_until
from tests.nodeagent.netns import Lab, lab, needs_root  # noqa: F401 - the lab fixture
from tests.portal.test_browser import CHROMIUM, page, portal_server, sign_in  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    needs_root,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (make test installs it)"),
]


@pytest.fixture
def base(portal_server: Any, platform: Platform) -> Iterator[str]:  # noqa: F811 - the fixtures
    """The live portal's address, with the real platform behind it."""
    yield portal_server.url


def test_sign_in_with_a_password_and_with_a_token_and_switch_tenants(world: Any, base: str, page: Any) -> None:  # noqa: F811
    Membership.objects.create(tenant=world.globex, user=world.owner.user, role="viewer")
    sign_in(page, base, "alice")
    assert page.url == f"{base}/t/acme/"
    page.locator(".switcher summary").click()
    page.get_by_role("link", name=re.compile("Globex")).click()
    assert page.url == f"{base}/t/globex/"
    assert "viewer" in page.locator(".tabs .role").inner_text()
    assert page.locator(".halt").count() == 0  # a viewer there: no halt button

    page.get_by_role("button", name="Sign out").click()
    page.fill("#id_token", world.operator.token)
    page.get_by_role("button", name="Sign in with token").click()
    assert page.url == f"{base}/t/acme/"
    assert "operator" in page.locator(".tabs .role").inner_text()
    assert page.goto(f"{base}/t/globex/").status == 404  # the token reaches its tenant only
    assert "not found" in page.content().lower()


def test_halt_from_the_portal_heals_the_network_and_ends_the_run(
    world: Any, base: str, page: Any, lab: Lab  # noqa: F811
) -> None:
    run = start(world, partition(world, lab, "120s"))
    wait_until(lambda: cut(lab), timeout=10, what="the partition")
    sign_in(page, base, "bob")
    assert "Running now" in page.content() and page.get_by_role("link", name="cut").count() == 1

    page.locator(".halt summary").click()
    page.get_by_role("button", name="Yes, halt everything").click()
    assert "Halted: 1 run stopped" in page.locator(".messages").inner_text()
    assert lab.connects(lab.path_a, lab.ip_b, PORT)  # healed before the page came back
    wait_until(lambda: Run.objects.get(uuid=run["id"]).phase == Run.Phase.FINISHED, timeout=10,
               what="the run to finish")


def test_a_viewer_sees_read_only_pages_and_another_tenants_urls_are_the_404_page(
    world: Any, base: str, page: Any  # noqa: F811
) -> None:
    sign_in(page, base, "carol")
    for path in ("", "experiments/", "runs/", "schedules/", "workflows/", "events/", "archives/", "environments/",
                 "settings/"):
        response = page.goto(f"{base}/t/acme/{path}")
        assert response.status == 200, path
        assert page.locator(".halt").count() == 0, path
        assert page.locator("main form[method=post]").count() == 0, f"{path} offers a viewer a form that changes things"
    for path in ("", "experiments/", "runs/", "settings/"):
        response = page.goto(f"{base}/t/globex/{path}")
        assert response.status == 404, path
        assert page.locator("h1").inner_text().strip() != "", path


def test_a_token_issued_in_the_portal_works_on_the_api_until_it_is_revoked(
    world: Any, base: str, page: Any  # noqa: F811
) -> None:
    import requests

    sign_in(page, base, "alice")
    page.goto(f"{base}/t/acme/tokens/")
    create = page.locator("form", has=page.get_by_role("button", name="Create token"))
    create.locator("input[name=name]").fill("ci-pipeline")
    create.locator("select[name=role]").select_option("operator")
    create.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").input_value()
    api = f"{base}/api/v1/tenants/acme/experiments/"
    assert requests.get(api, headers={"Authorization": f"Bearer {secret}"}, timeout=10).status_code == 200

    row = page.locator("tr", has=page.get_by_role("cell", name="ci-pipeline", exact=True))
    row.get_by_role("button", name="Revoke").click()
    assert "revoked" in page.locator("tr", has=page.get_by_role("cell", name="ci-pipeline", exact=True)).inner_text()
    assert requests.get(api, headers={"Authorization": f"Bearer {secret}"}, timeout=10).status_code == 401
    assert secret not in page.content()


def phase_badge(browser_page: Any) -> Any:
    return browser_page.locator("span.rn-phase[data-rn-phase]")


def test_an_experiment_made_in_the_form_dry_runs_then_runs_on_the_agent_and_shows_on_the_timeline(
    world: Any, base: str, page: Any, lab: Lab  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    sign_in(page, base, "bob")
    page.goto(f"{base}/t/acme/experiments/new/?kind=PhysicalMachineChaos&action=network-partition")
    page.fill('[name="name"]', "cut-from-the-portal")
    page.fill('[name="params.network-partition.device"]', "veth0")
    page.fill('[name="params.network-partition.ip-address"]', lab.ip_b)
    page.select_option('[name="params.network-partition.direction"]', "to")
    page.fill('[name="selector.agents"]', "e2e")
    page.select_option('[name="mode"]', "all")
    page.fill('[name="duration"]', "soon")
    page.get_by_role("button", name="Create experiment").last.click()
    expect(page.locator('[data-field="duration"] .errorlist')).to_contain_text("soon")  # on its field
    page.fill('[name="duration"]', "4s")
    page.get_by_role("button", name="Create experiment").last.click()
    expect(page.locator("h1")).to_have_text("Experiment cut-from-the-portal")
    expect(page.locator("pre.xp-yaml")).to_contain_text("kind: PhysicalMachineChaos")  # its YAML
    experiment_page = page.url

    page.select_option("#xp-run-environment", "lab")
    page.get_by_role("button", name="Dry run").click()
    assert re.search(r"/t/acme/runs/[0-9a-f-]+/$", page.url)
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "finished", timeout=20_000)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)  # a dry run touches nothing

    page.goto(experiment_page)
    page.select_option("#xp-run-environment", "lab")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "running", timeout=20_000)  # live, no reload
    assert cut(lab)
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "finished", timeout=20_000)
    bar = page.locator("rect.rn-bar[data-target]")
    expect(bar).to_have_count(1)
    expect(bar).to_have_attribute("data-state", "recovered")
    assert lab.connects(lab.path_a, lab.ip_b, PORT)


def test_pause_resume_and_stop_from_the_run_page_act_on_the_network(
    world: Any, base: str, page: Any, lab: Lab  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    run = start(world, partition(world, lab, "120s"))
    wait_until(lambda: cut(lab), timeout=10, what="the partition")
    sign_in(page, base, "bob")
    page.goto(f"{base}/t/acme/runs/{run['id']}/")
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "running")

    page.get_by_role("button", name="Pause").click()
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "paused", timeout=20_000)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    page.get_by_role("button", name="Resume").click()
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "running", timeout=20_000)
    assert cut(lab)
    page.get_by_role("button", name="Stop").click()
    expect(phase_badge(page)).to_have_attribute("data-rn-phase", "finished", timeout=20_000)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    expect(page.locator("rect.rn-bar[data-target]")).to_have_count(2)  # two rounds: before and after the pause


def test_a_workflow_and_a_schedule_made_in_the_portal_progress_and_fire(
    world: Any, base: str, page: Any, lab: Lab  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    partition(world, lab, "60s")  # the experiment `cut`, over the API
    sign_in(page, base, "bob")
    page.goto(f"{base}/t/acme/workflows/new/")
    steps = page.locator("form", has=page.locator('input[name="source"][value="steps"]'))
    steps.locator('[name="name"]').fill("portal-game-day")
    steps.locator('[name="step-0-kind"]').select_option("experiment")
    steps.locator('[name="step-0-experiment"]').select_option("cut")
    steps.locator('[name="step-0-deadline"]').fill("3s")
    steps.locator('[name="step-1-kind"]').select_option("suspend")
    steps.locator('[name="step-1-deadline"]').fill("1s")
    steps.get_by_role("button", name="Create workflow").click()
    expect(page.locator("[data-path]").first).to_be_visible()  # the drawn tree

    page.locator('select[name="environment"]').select_option("lab")
    page.get_by_role("button", name="Start run").click()
    assert "/workflow-runs/" in page.url
    cut_node = page.locator('[data-path$="/cut"]').first
    expect(cut_node).to_have_class(re.compile(r"state-running"), timeout=10_000)  # live, no reload
    assert cut(lab)
    expect(page.locator("[data-wr-phase]")).to_have_text("succeeded", timeout=30_000)
    expect(cut_node).to_have_class(re.compile(r"state-succeeded"))
    assert lab.connects(lab.path_a, lab.ip_b, PORT)

    page.goto(f"{base}/t/acme/schedules/new/")
    page.fill('[name="name"]', "every-two-seconds")
    page.select_option('[name="target"]', "experiment:cut")
    page.select_option('[name="environment"]', "lab")
    page.fill('[name="cron"]', "@every 2s")
    expect(page.locator(".cron-words")).to_contain_text("every 2 seconds")  # described as you type
    page.select_option('[name="dry_run"]', "true")
    page.get_by_role("button", name="Create schedule").click()
    schedule_page = page.url
    wait_until(lambda: Run.objects.filter(schedule__name="every-two-seconds").count() >= 2, timeout=15,
               what="two ticks of the schedule")
    page.goto(schedule_page)
    expect(page.locator('a[href^="/t/acme/runs/"]').first).to_be_visible()  # its runs, listed
    page.get_by_role("button", name="Pause").click()
    count = Run.objects.filter(schedule__name="every-two-seconds").count()
    page.wait_for_timeout(4500)
    assert Run.objects.filter(schedule__name="every-two-seconds").count() <= count + 1  # a claimed tick at most
    assert lab.connects(lab.path_a, lab.ip_b, PORT)  # dry runs
