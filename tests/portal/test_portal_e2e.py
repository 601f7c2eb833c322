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
