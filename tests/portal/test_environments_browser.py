"""The environments pages in a real browser (Chromium via Playwright): registering a Kubernetes cluster
through the form, its manifest, and the Copy button (the clipboard, and the selection fallback)."""
from __future__ import annotations

import re
from typing import Any

from tests.portal.test_browser import page, portal_server, sign_in  # noqa: F401

REGISTRATION_TOKEN = re.compile(r"cpr_[0-9a-f]+_[A-Za-z0-9_-]+")


def register_cluster(page: Any, base: str, name: str) -> None:  # noqa: F811 - `page` is the fixture's object
    page.goto(f"{base}/t/acme/environments/")
    page.get_by_role("link", name="Kubernetes cluster").click()
    form = page.locator("form.register")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=api_url]").fill("https://k8s.example:6443")
    form.get_by_label("Namespaces only: a Role in each namespace").check()
    form.locator("input[name=namespaces]").fill("shop, web")
    form.get_by_role("button", name="Register kubernetes cluster").click()


def test_an_owner_registers_a_cluster_and_copies_its_manifest(
    world: Any, portal_server: Any, page: Any  # noqa: F811
) -> None:
    from injector.models import Environment

    base = portal_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    sign_in(page, base, "alice")

    register_cluster(page, base, "shop")

    token = page.locator("#registration-token").input_value()
    assert REGISTRATION_TOKEN.fullmatch(token)
    manifest = page.locator("#manifest").inner_text()
    assert token in manifest and "kind: DaemonSet" in manifest and "namespace: web" in manifest
    assert Environment.objects.get(tenant=world.acme, name="shop").config["namespaces"] == ["shop", "web"]

    copy = page.locator("button[data-copy=manifest]")
    assert copy.is_visible()  # the script shows it
    copy.click()
    page.get_by_text("Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#manifest").text_content()

    # The page again: the token is gone; the generator switches to the cluster-scoped manifest.
    page.goto(f"{base}/t/acme/environments/shop/")
    assert token not in page.content()
    page.get_by_label("Whole cluster: a ClusterRole (also lets selectors name nodes)").check()
    page.get_by_role("button", name="Show this manifest").click()
    assert "kind: ClusterRole\n" in page.locator("#manifest").text_content()


def test_copy_falls_back_to_selecting_the_text(world: Any, portal_server: Any, page: Any) -> None:  # noqa: F811
    base = portal_server.url
    sign_in(page, base, "alice")
    register_cluster(page, base, "shop")
    # A browser without the asynchronous clipboard (or that refuses it): the text is selected instead.
    page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")

    page.locator("button[data-copy=manifest]").click()

    selected = page.evaluate("window.getSelection().toString()")  # without the text's last new line
    assert selected.rstrip("\n") == page.locator("#manifest").text_content().rstrip("\n")
    assert page.locator(".copy-status").first.text_content() in ("Copied.", "Selected: press Ctrl+C (⌘C) to copy.")
