"""The events page through Django's test Client: the tenant's timeline, newest first, 50 a page, its
filters, and each event's link to its run, workflow run or schedule."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments import runs, services, workflows
from experiments.models import Event
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal.test_portal import signed_in, text

pytestmark = pytest.mark.django_db
URL = "/t/acme/events/"


def event(world: Any, reason: str, message: str = "", *, minutes_ago: float = 0, **fields: Any) -> Event:
    return Event.objects.create(tenant=fields.pop("tenant", world.acme), reason=reason, message=message,
                                created_at=timezone.now() - timedelta(minutes=minutes_ago), **fields)


def reasons(response: Any) -> list[str]:
    return [e.reason for e in response.context["events"]]


def test_no_events_says_when_they_come(world: Any) -> None:
    assert "No events yet. They appear when runs start" in text(signed_in(world.viewer).get(URL))


def test_members_see_their_tenants_events_newest_first_and_outsiders_a_404(world: Any) -> None:
    event(world, "Older", minutes_ago=5)
    event(world, "Newer", minutes_ago=1)
    event(world, "Theirs", tenant=world.globex)
    for member in ("owner", "operator", "viewer"):
        assert reasons(signed_in(world.member(member)).get(URL)) == ["Newer", "Older"]
    assert signed_in(world.outsider).get(URL).status_code == 404
    assert reasons(signed_in(world.outsider).get("/t/globex/events/")) == ["Theirs"]


@pytest.mark.parametrize(("query", "expected"), [
    ({"type": "warning"}, ["Failed"]),
    ({"reason": "scheduleFIRED"}, ["ScheduleFired"]),
    ({"object_type": "run"}, ["Failed", "Started"]),
    ({"q": "CPU"}, ["Started"]),
    ({"since": "{since}"}, ["ScheduleFired"]),
    ({"until": "{since}"}, ["Failed", "Started"]),
    ({"type": "normal", "object_type": "run"}, ["Started"]),
])
def test_the_filters_narrow_the_timeline(world: Any, query: dict[str, str], expected: list[str]) -> None:
    event(world, "Started", "stress cpu started", object_type="run", minutes_ago=30)
    event(world, "Failed", "no target", object_type="run", type="warning", minutes_ago=20)
    event(world, "ScheduleFired", "tick", object_type="schedule", minutes_ago=1)
    since = (timezone.now() - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    response = signed_in(world.viewer).get(URL, {k: v.format(since=since) for k, v in query.items()})
    assert reasons(response) == expected
    assert "Clear filters" in text(response)


def test_a_bad_date_shows_its_error_and_no_events(world: Any) -> None:
    event(world, "Started")
    response = signed_in(world.viewer).get(URL, {"since": "yesterday-ish"})
    assert reasons(response) == [] and response.context["filters"].form.errors["since"]
    assert "Fix the filters above" in text(response)


def test_no_match_says_so(world: Any) -> None:
    event(world, "Started")
    assert "No events match these filters." in text(signed_in(world.viewer).get(URL, {"reason": "Nothing"}))


def test_the_timeline_is_paged_by_fifty_keeping_the_filters(world: Any) -> None:
    Event.objects.bulk_create(Event(tenant=world.acme, reason="Tick", message=str(i), type="warning",
                                    created_at=timezone.now() - timedelta(seconds=i)) for i in range(60))
    client = signed_in(world.viewer)
    first = client.get(URL, {"type": "warning"})
    assert [e.message for e in first.context["events"]] == [str(i) for i in range(50)]
    assert 'href="?type=warning&amp;page=2"' in text(first)
    second = client.get(URL, {"type": "warning", "page": "2"})
    assert [e.message for e in second.context["events"]] == [str(i) for i in range(50, 60)]


def test_each_event_links_to_its_run_workflow_run_or_schedule(world: Any) -> None:
    env = hosts_environment(world.acme)
    experiment = host_experiment(world.acme, "cpu")
    run = runs.start_run(SYSTEM, experiment, env, dry_run=True)
    flow = services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": {"entry": "wait", "templates": [
        {"name": "wait", "templateType": "Suspend", "deadline": "10s"}]}})
    wr = workflows.start_workflow(SYSTEM, flow, env, dry_run=True)
    schedule = services.save_schedule(SYSTEM, world.acme, {"name": "nightly", "cron": "@daily", "experiment": "cpu",
                                                           "environment": "lab"})
    event(world, "ScheduleFired", object_type="schedule", object_id=str(schedule.uuid))
    event(world, "ScheduleFired", "of a deleted schedule", object_type="schedule",
          object_id="00000000-0000-0000-0000-000000000000")
    page = text(signed_in(world.viewer).get(URL))
    assert f'href="/t/acme/runs/{run.uuid}/">run cpu</a>' in page
    assert f'href="/t/acme/workflow-runs/{wr.uuid}/">workflow run flow</a>' in page
    assert f'href="/t/acme/schedules/{schedule.uuid}/">schedule nightly</a>' in page
    assert "/t/acme/schedules/00000000-0000-0000-0000-000000000000/" not in page


def test_the_page_takes_a_constant_number_of_queries(world: Any) -> None:
    env = hosts_environment(world.acme)
    experiment = host_experiment(world.acme, "cpu")
    client = signed_in(world.viewer)
    runs.start_run(SYSTEM, experiment, env, dry_run=True)
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for index in range(5):
        runs.start_run(SYSTEM, experiment, env, dry_run=True)
        schedule = services.save_schedule(SYSTEM, world.acme, {"name": f"s{index}", "cron": "@daily",
                                                               "experiment": "cpu", "environment": "lab"})
        event(world, "ScheduleFired", object_type="schedule", object_id=str(schedule.uuid))
    with CaptureQueriesContext(connection) as many:
        client.get(URL)
    assert len(many) == len(few) + 1  # the schedules' names, once there are events about schedules
