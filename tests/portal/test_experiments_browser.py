"""The live parts of the experiment form in a real browser (static/js/experiments.js): the generated
form follows the kind and action without a reload, a bad value comes back on its field, the YAML tab
follows the form as you type, and the preview lists the agents the selector picks. No worker runs here."""
from __future__ import annotations

import os
from typing import Any

import pytest

from experiments.models import Experiment
from tests.experiments.runs_harness import hosts_environment
from tests.portal import test_browser
from tests.portal.test_browser import CHROMIUM, sign_in

# The shared browser fixtures, under their own names (tests take them as arguments).
page, portal_server = test_browser.page, test_browser.portal_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (make test installs it)"),
]


def field(page: Any, name: str) -> Any:
    return page.locator(f'[data-field="{name}"]').first


def open_form(page: Any, base: str, kind: str, action: str, user: str = "bob") -> None:
    sign_in(page, base, user)
    page.goto(f"{base}/t/acme/experiments/new/?kind={kind}&action={action}")


def test_the_generated_form_follows_the_kind_and_action_without_a_reload(world: Any, portal_server: Any,
                                                                         page: Any) -> None:
    from playwright.sync_api import expect

    open_form(page, portal_server.url, "NetworkChaos", "delay")
    page.evaluate("window.notReloaded = true")
    page.fill('[name="name"]', "kept-name")
    expect(page.locator('[name="params.delay.latency"]')).to_be_visible()
    expect(page.get_by_role("button", name="Show this kind's actions")).to_be_hidden()  # the script does it

    page.select_option('[name="action"]', "loss")
    expect(page.locator('[name="params.loss.loss"]')).to_be_visible()
    expect(page.locator('[name="params.delay.latency"]')).to_have_count(0)

    page.select_option('[name="kind"]', "PhysicalMachineChaos")
    expect(page.locator('[name="action"]')).to_have_value("stress-cpu")
    expect(page.locator('[name="params.stress-cpu.workers"]')).to_be_visible()
    expect(page.locator('[name="selector.agents"]')).to_be_visible()

    page.select_option('[name="kind"]', "AWSChaos")
    expect(page.locator('[name="params.ec2Instance"]')).to_be_visible()
    expect(page.locator('[name="mode"]')).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator('[name="name"]')).to_have_value("kept-name")


def test_a_bad_value_shows_its_message_on_the_field_after_submit(world: Any, portal_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    open_form(page, portal_server.url, "NetworkChaos", "delay")
    page.fill('[name="name"]', "slow-cart")
    page.fill('[name="params.delay.latency"]', "fast")
    page.fill('[name="duration"]', "30s")
    page.select_option('[name="mode"]', "all")
    page.get_by_role("button", name="Create experiment").last.click()

    latency = field(page, "params.delay.latency")
    expect(latency.locator(".errorlist")).to_contain_text('"fast" is not a duration')
    expect(page.locator('[name="params.delay.latency"]')).to_have_attribute("aria-invalid", "true")
    expect(field(page, "duration").locator(".errorlist")).to_have_count(0)
    assert not Experiment.objects.exists()

    page.fill('[name="params.delay.latency"]', "100ms")
    page.get_by_role("button", name="Create experiment").last.click()
    expect(page.locator("h1")).to_have_text("Experiment slow-cart")
    assert Experiment.objects.get(name="slow-cart").params == {"delay": {"latency": "100ms"}}


def test_the_yaml_tab_follows_the_form_as_you_type(world: Any, portal_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    open_form(page, portal_server.url, "NetworkChaos", "delay")
    yaml = page.locator("[data-xp-yaml]")
    page.fill('[name="name"]', "slow-cart")
    page.fill('[name="params.delay.latency"]', "123ms")
    page.select_option('[name="mode"]', "all")

    page.get_by_role("tab", name="YAML").click()
    expect(page.locator('[name="params.delay.latency"]')).to_be_hidden()
    expect(yaml).to_contain_text("kind: NetworkChaos")
    expect(yaml).to_contain_text("latency: 123ms")
    expect(yaml).to_contain_text("name: slow-cart")

    page.get_by_role("tab", name="Form").click()
    page.fill('[name="params.delay.latency"]', "")
    page.locator('[name="params.delay.latency"]').press_sequentially("250ms", delay=20)
    page.get_by_role("tab", name="YAML").click()
    expect(yaml).to_contain_text("latency: 250ms")

    page.get_by_role("tab", name="Form").click()
    page.fill('[name="params.delay.latency"]', "soon")
    page.get_by_role("tab", name="YAML").click()
    expect(yaml).to_be_hidden()
    expect(page.locator("[data-xp-yaml-errors]")).to_contain_text("is not a duration")


def test_the_preview_lists_the_agents_the_selector_picks(world: Any, portal_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    hosts_environment(world.acme)  # host-0 and host-2: tier=web; host-1: tier=db
    open_form(page, portal_server.url, "PhysicalMachineChaos", "stress-cpu")
    page.fill('[name="params.stress-cpu.load"]', "10")
    page.fill('[name="params.stress-cpu.workers"]', "1")
    page.select_option('[name="mode"]', "all")
    result = page.locator("[data-xp-preview-result]")

    page.select_option('[name="environment"]', "lab")
    expect(result).to_contain_text("3 of 3 candidates in lab")
    for host in ("host-0", "host-1", "host-2"):
        expect(result).to_contain_text(host)

    page.locator('[name="selector.labelSelectors:key"]').first.fill("tier")
    page.locator('[name="selector.labelSelectors:value"]').first.fill("web")
    expect(result).to_contain_text("2 of 2 candidates in lab")
    expect(result).not_to_contain_text("host-1")

    page.select_option('[name="mode"]', "one")
    expect(result).to_contain_text("1 of 2 candidates")
    expect(result).to_contain_text("every run draws again")


def test_add_a_row_adds_an_empty_label_row_in_place(world: Any, portal_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    open_form(page, portal_server.url, "PodChaos", "pod-kill")
    page.evaluate("window.notReloaded = true")
    rows = field(page, "selector.labelSelectors").locator(".xp-row")
    expect(rows).to_have_count(1)
    field(page, "selector.labelSelectors").get_by_role("button", name="Add a row").click()
    expect(rows).to_have_count(2)
    assert page.evaluate("window.notReloaded") is True


def test_the_form_fits_a_phone(world: Any, portal_server: Any, page: Any) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_form(page, portal_server.url, "NetworkChaos", "delay")
    page.locator("details.xp-more").first.evaluate("d => d.open = true")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
