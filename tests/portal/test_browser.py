"""The portal in a real browser: Debian's Chromium driven by Playwright against a live server
(a live server on the suite's real PostgreSQL)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are synchronous
# and safe, so let Django allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (make test installs it)"),
]


@pytest.fixture
def portal_server(transactional_db: Any) -> Iterator[Any]:
    """A live server for this test only (pytest-django's is session-wide and would outlive the test
    database's teardown, holding a connection to it)."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def page(tmp_path: Any) -> Iterator[Any]:
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        yield page
        page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
        browser.close()
        # ORM calls made while Playwright's loop runs get connections of their own (Django keeps
        # them per context); close them here, or they hold the test database open.
        connections.close_all()


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-password-1")
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_an_owner_signs_in_adds_a_member_makes_a_token_and_finds_both_in_the_audit_log(
    world: Any, portal_server: Any, page: Any
) -> None:
    from tenants.models import ApiToken, AuditEntry
    from tests.conftest import make_user

    make_user("dave")
    base = portal_server.url

    sign_in(page, base, "alice")
    assert page.url == f"{base}/t/acme/"
    assert page.locator("h1").inner_text().strip()
    assert "No events yet" in page.content()

    page.goto(f"{base}/t/acme/members/")
    add = page.locator("form", has=page.get_by_role("button", name="Add member"))
    add.locator("input[name=username]").fill("dave")
    add.locator("select[name=role]").select_option("operator")
    add.get_by_role("button", name="Add member").click()
    assert page.get_by_role("cell", name="dave", exact=True).count() == 1

    page.goto(f"{base}/t/acme/tokens/")
    create = page.locator("form", has=page.get_by_role("button", name="Create token"))
    create.locator("input[name=name]").fill("from-the-browser")
    create.locator("select[name=role]").select_option("viewer")
    create.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").input_value()
    assert secret.startswith("cpt_")
    page.goto(f"{base}/t/acme/tokens/")
    assert page.locator("#new-token").count() == 0 and secret not in page.content()
    assert ApiToken.objects.filter(name="from-the-browser", role="viewer").exists()

    page.goto(f"{base}/t/acme/audit/")
    page.fill("input[name=action]", "member.add")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and "dave" in rows.first.text_content()  # in the entry's folded after
    assert AuditEntry.objects.filter(tenant=world.acme, action="member.add", actor_label="alice").count() == 1

    # The new token opens a session limited to acme as a viewer: no member forms.
    page.get_by_role("button", name="Sign out").click()
    page.fill("#id_token", secret)
    page.get_by_role("button", name="Sign in with token").click()
    assert page.url == f"{base}/t/acme/"
    page.goto(f"{base}/t/acme/members/")
    assert page.get_by_role("button", name="Add member").count() == 0
    assert page.goto(f"{base}/t/globex/").status == 404
