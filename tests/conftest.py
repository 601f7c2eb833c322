"""Shared fixtures: a tenant `acme` with alice (owner), bob (operator), carol (viewer), and mallory,
who owns another tenant `globex` (Healthchecks' alice/bob/charlie, plus an outsider)."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tenants import services
from tenants.actors import Actor
from tenants.models import Membership, Tenant
from tenants.roles import Role

STRICT = os.environ.get("CHAOSPLANE_STRICT") == "1"


def pytest_configure(config: Any) -> None:
    # A SIGTERM (CI cancelling, `timeout`) ends the run like Ctrl-C: fixtures tear down and the
    # servers and workers tests started are stopped, instead of being orphaned in their sessions.
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    """Under CHAOSPLANE_STRICT=1 (set by .ci/run) a skipped test is a failure: CI must run them all."""
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CHAOSPLANE_STRICT=1, where every test must run: {report.longrepr}"


@dataclass
class Member:
    user: Any
    role: str | None
    token: str  # a bearer token at the member's role (in the member's own tenant)


@dataclass
class World:
    acme: Tenant
    globex: Tenant
    owner: Member
    operator: Member
    viewer: Member
    outsider: Member

    def member(self, name: str) -> Member:
        return getattr(self, name)


def make_user(username: str) -> Any:
    return get_user_model().objects.create_user(username=username, password=f"{username}-password-1")


@pytest.fixture
def world(db: Any) -> World:
    system = Actor.system_actor("system:test")
    alice, bob, carol, mallory = (make_user(n) for n in ("alice", "bob", "carol", "mallory"))
    acme = services.create_tenant(system, "acme", "Acme Corp", alice)
    globex = services.create_tenant(system, "globex", "Globex", mallory)
    Membership.objects.create(tenant=acme, user=bob, role=Role.OPERATOR)
    Membership.objects.create(tenant=acme, user=carol, role=Role.VIEWER)

    def token(tenant: Tenant, user: Any, role: str) -> str:
        return services.issue_token(system, tenant, f"{user.username}-{role}", role, user=user).secret

    return World(
        acme=acme,
        globex=globex,
        owner=Member(alice, Role.OWNER, token(acme, alice, Role.OWNER)),
        operator=Member(bob, Role.OPERATOR, token(acme, bob, Role.OPERATOR)),
        viewer=Member(carol, Role.VIEWER, token(acme, carol, Role.VIEWER)),
        outsider=Member(mallory, None, token(globex, mallory, Role.OWNER)),
    )


def client_for(member: Member | None, auth: str = "token") -> APIClient:
    client = APIClient()
    if member is None:
        return client
    if auth == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {member.token}")
    else:
        client.force_login(member.user)
    return client


@pytest.fixture
def api() -> Any:
    return client_for
