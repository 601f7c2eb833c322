"""The schedules pages through Django's test Client: the list, the form with its cron preview, a
schedule's page, pause, resume, edit and delete, for owner, operator, viewer and outsider."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from experiments import runs, services, workflows
from experiments.models import Event, Schedule
from tenants.models import AuditEntry
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal.test_portal import signed_in, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(world: Any) -> Any:
    env = hosts_environment(world.acme)
    experiment = host_experiment(world.acme, "cpu")
    return env, experiment


def make_schedule(world: Any, name: str = "nightly", **extra: Any) -> Schedule:
    data = {"name": name, "cron": "0 3 * * *", "experiment": "cpu", "environment": "lab", **extra}
    return services.save_schedule(SYSTEM, world.acme, data)


def form_data(**overrides: Any) -> dict[str, Any]:
    return {"name": "weekday-cpu", "description": "", "target": "experiment:cpu", "environment": "lab",
            "cron": "0 10 * * 1-5", "time_zone": "Europe/Berlin", "concurrency_policy": "Forbid", "history_limit": "",
            "starting_deadline_seconds": "", "dry_run": "true", **overrides}


def url(world: Any, tail: str = "") -> str:
    return f"/t/acme/schedules/{tail}"


def errors_of(response: Any, field: str) -> list[str]:
    return response.context["form"].errors.get(field, [])


# The list ----------------------------------------------------------------------------------------


def test_the_list_says_what_to_do_when_there_are_no_schedules(world: Any) -> None:
    page = text(signed_in(world.operator).get(url(world)))
    assert "No schedules yet" in page and 'href="/t/acme/schedules/new/"' in page
    assert "Operators and owners create them" in text(signed_in(world.viewer).get(url(world)))


@pytest.mark.parametrize("member", ["owner", "operator", "viewer"])
def test_every_member_sees_each_schedule_with_its_cron_in_words_and_next_tick(world: Any, lab: Any,
                                                                             member: str) -> None:
    schedule = make_schedule(world)
    response = signed_in(world.member(member)).get(url(world))
    page = text(response)
    assert response.status_code == 200
    assert f'href="/t/acme/schedules/{schedule.uuid}/"' in page
    assert "<code>0 3 * * *</code>" in page and "at 03:00 every day" in page
    assert f'datetime="{schedule.next_fire_at.isoformat()}"' in page
    assert ("New schedule" in page) == (member != "viewer")


def test_the_list_shows_the_last_run_and_hides_the_schedules_of_workflow_nodes(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    run = runs.start_run(SYSTEM, lab[1], lab[0], dry_run=True, schedule=schedule, origin="schedule")
    node_schedule = node_owned_schedule(world, lab)
    page = text(signed_in(world.viewer).get(url(world)))
    assert f'href="/t/acme/runs/{run.uuid}/"' in page
    assert node_schedule.name not in page


def test_the_list_takes_a_constant_number_of_queries(world: Any, lab: Any) -> None:
    client = signed_in(world.viewer)
    make_schedule(world, "one")
    with CaptureQueriesContext(connection) as few:
        client.get(url(world))
    for index in range(5):
        schedule = make_schedule(world, f"more-{index}")
        runs.start_run(SYSTEM, lab[1], lab[0], dry_run=True, schedule=schedule, origin="schedule")
    with CaptureQueriesContext(connection) as many:
        assert client.get(url(world)).status_code == 200
    assert len(many) == len(few)


def test_an_outsider_gets_404_for_the_list_and_for_a_schedule(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    client = signed_in(world.outsider)
    assert client.get(url(world)).status_code == 404
    assert client.get(url(world, f"{schedule.uuid}/")).status_code == 404
    assert client.post(url(world, f"{schedule.uuid}/pause/")).status_code == 404


def test_another_tenants_schedule_is_a_404_inside_my_tenant(world: Any) -> None:
    hosts_environment(world.globex)
    host_experiment(world.globex, "cpu")
    theirs = services.save_schedule(SYSTEM, world.globex, {"name": "theirs", "cron": "@hourly", "experiment": "cpu",
                                                           "environment": "lab"})
    client = signed_in(world.owner)
    for tail in ("", "edit/"):
        assert client.get(url(world, f"{theirs.uuid}/{tail}")).status_code == 404
    for tail in ("pause/", "resume/", "delete/"):
        assert client.post(url(world, f"{theirs.uuid}/{tail}")).status_code == 404
    assert Schedule.objects.filter(pk=theirs.pk, paused=False).exists()


# Creating ----------------------------------------------------------------------------------------


def test_a_viewer_gets_no_form_and_cannot_create(world: Any, lab: Any) -> None:
    client = signed_in(world.viewer)
    assert client.get(url(world, "new/")).status_code == 403
    assert client.post(url(world, "new/"), form_data()).status_code == 403
    assert not Schedule.objects.exists()


def test_the_form_offers_the_tenants_experiments_workflows_and_environments(world: Any, lab: Any) -> None:
    services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": {"entry": "wait", "templates": [
        {"name": "wait", "templateType": "Suspend", "deadline": "10s"}]}})
    host_experiment(world.globex, "secret-experiment")
    page = text(signed_in(world.operator).get(url(world, "new/")))
    assert 'value="experiment:cpu"' in page and 'value="workflow:flow"' in page and 'value="lab"' in page
    assert "secret-experiment" not in page
    assert 'data-url="/t/acme/schedules/preview/"' in page


def test_an_operator_creates_a_schedule_and_lands_on_its_page(world: Any, lab: Any) -> None:
    client = signed_in(world.operator)
    response = client.post(url(world, "new/"), form_data())
    schedule = Schedule.objects.get(name="weekday-cpu")
    assert response.status_code == 302 and response["Location"] == url(world, f"{schedule.uuid}/")
    assert (schedule.experiment.name, schedule.environment.name, schedule.cron, schedule.time_zone) == (
        "cpu", "lab", "0 10 * * 1-5", "Europe/Berlin")
    assert schedule.dry_run is True and schedule.next_fire_at is not None
    assert AuditEntry.objects.filter(action="schedule.create", actor_label="bob").exists()
    assert "Created schedule weekday-cpu." in text(client.get(response["Location"]))


def test_a_workflow_can_be_scheduled_paused_with_a_history_limit(world: Any, lab: Any) -> None:
    services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": {"entry": "wait", "templates": [
        {"name": "wait", "templateType": "Suspend", "deadline": "10s"}]}})
    data = form_data(target="workflow:flow", paused="on", history_limit="3", starting_deadline_seconds="30",
                     concurrency_policy="Allow", dry_run="")
    assert signed_in(world.owner).post(url(world, "new/"), data).status_code == 302
    schedule = Schedule.objects.get(name="weekday-cpu")
    assert schedule.workflow.name == "flow" and schedule.experiment is None
    assert (schedule.paused, schedule.next_fire_at, schedule.history_limit, schedule.starting_deadline_seconds,
            schedule.concurrency_policy, schedule.dry_run) == (True, None, 3, 30, "Allow", None)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cron", "61 * * * *", "'61' is out of range for minute (0-59)"),
    ("time_zone", "Mars/Olympus_Mons", "'Mars/Olympus_Mons' is not a time zone"),
    ("name", "Not A Name", "lowercase letters"),
    ("target", "", "This field is required."),
    ("environment", "", "This field is required."),
])
def test_a_bad_value_is_shown_on_its_field_and_nothing_is_created(world: Any, lab: Any, field: str, value: str,
                                                                   message: str) -> None:
    before = AuditEntry.objects.count()
    response = signed_in(world.operator).post(url(world, "new/"), form_data(**{field: value}))
    assert response.status_code == 400
    assert any(message in e for e in errors_of(response, field)), response.context["form"].errors
    # The message is rendered in the field's own group: after its label, before the next field's.
    group = text(response).split(f'<label for="id_{field}"', 1)[1].split("<label", 1)[0]
    assert message.replace("'", "&#x27;") in group
    assert not Schedule.objects.exists() and AuditEntry.objects.count() == before


def test_a_taken_name_is_shown_on_the_name_field(world: Any, lab: Any) -> None:
    make_schedule(world, "weekday-cpu")
    response = signed_in(world.operator).post(url(world, "new/"), form_data())
    assert response.status_code == 400
    assert "already exists" in " ".join(errors_of(response, "name"))
    assert Schedule.objects.count() == 1


def test_the_form_shows_the_cron_in_words_and_next_ticks_when_it_comes_back(world: Any, lab: Any) -> None:
    response = signed_in(world.operator).post(url(world, "new/"), form_data(name="Bad Name", cron="*/10 * * * *"))
    page = text(response)
    assert "every 10 minutes" in page
    assert len(re.findall(r"<li><time datetime=[^>]+>[^<]+ UTC</time></li>", page)) == 5


# The preview -------------------------------------------------------------------------------------


def test_the_preview_gives_the_cron_in_words_and_the_next_five_ticks(world: Any) -> None:
    response = signed_in(world.viewer).get(url(world, "preview/"), {"cron": "0 10 * * 1-5",
                                                                     "time_zone": "Europe/Berlin"})
    body = response.json()
    assert response.status_code == 200
    assert body["description"] == "at 10:00 on Monday through Friday"
    assert len(body["next"]) == 5 and all(t.endswith("+00:00") for t in body["next"])
    # 10:00 in Berlin is 08:00 or 09:00 UTC.
    assert all(t[11:13] in ("08", "09") for t in body["next"])


@pytest.mark.parametrize(("params", "field"), [
    ({"cron": "61 * * * *", "time_zone": "UTC"}, "cron"),
    ({"cron": "@hourly", "time_zone": "Nowhere/Special"}, "time_zone"),
    ({"cron": "", "time_zone": "UTC"}, "cron"),
])
def test_the_preview_names_the_bad_field(world: Any, params: dict[str, str], field: str) -> None:
    response = signed_in(world.operator).get(url(world, "preview/"), params)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field] and response.json()["next"] == []


def test_the_preview_is_for_members_only(world: Any) -> None:
    assert signed_in(world.outsider).get(url(world, "preview/"), {"cron": "@hourly"}).status_code == 404
    assert Client().get(url(world, "preview/"), {"cron": "@hourly"}).status_code == 302


# A schedule's page ----------------------------------------------------------------------------------


def test_a_schedules_page_shows_next_ticks_runs_and_events(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    run = runs.start_run(SYSTEM, lab[1], lab[0], dry_run=True, schedule=schedule, origin="schedule")
    Event.objects.create(tenant=world.acme, reason="ScheduleFired", message="tick fired", object_type="schedule",
                         object_id=str(schedule.uuid), run=run)
    Event.objects.create(tenant=world.acme, reason="Unrelated", message="about something else",
                         object_type="schedule", object_id="another")
    page = text(signed_in(world.viewer).get(url(world, f"{schedule.uuid}/")))
    assert "at 03:00 every day" in page
    assert len(re.findall(r'<li><time datetime="[^"]+">[^<]+ 03:00:00 UTC</time></li>', page)) == 5
    assert page.count(f'href="/t/acme/runs/{run.uuid}/"') == 2  # its runs, and the event's link
    assert "tick fired" in page and "about something else" not in page


def test_a_viewer_sees_no_buttons_and_an_operator_sees_them(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    viewer = text(signed_in(world.viewer).get(url(world, f"{schedule.uuid}/")))
    operator = text(signed_in(world.operator).get(url(world, f"{schedule.uuid}/")))
    for action in ("pause/", "edit/", "delete/"):
        assert url(world, f"{schedule.uuid}/{action}") not in viewer
        assert url(world, f"{schedule.uuid}/{action}") in operator
    assert url(world, f"{schedule.uuid}/resume/") not in operator


def test_a_paused_schedule_shows_no_ticks_and_a_resume_button(world: Any, lab: Any) -> None:
    schedule = make_schedule(world, paused=True)
    page = text(signed_in(world.operator).get(url(world, f"{schedule.uuid}/")))
    assert "None while paused" in page and url(world, f"{schedule.uuid}/resume/") in page


# Pause, resume, edit, delete -------------------------------------------------------------------------


def test_an_operator_pauses_and_resumes_a_schedule(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    client = signed_in(world.operator)
    response = client.post(url(world, f"{schedule.uuid}/pause/"), follow=True)
    schedule.refresh_from_db()
    assert schedule.paused and schedule.next_fire_at is None
    assert "Paused nightly" in text(response)
    assert Event.objects.filter(reason="SchedulePaused", object_id=str(schedule.uuid)).exists()

    response = client.post(url(world, f"{schedule.uuid}/resume/"), follow=True)
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.next_fire_at is not None
    assert "Resumed nightly" in text(response)
    assert list(AuditEntry.objects.filter(action__startswith="schedule.").values_list("action", flat=True)
                .order_by("seq")) == ["schedule.create", "schedule.pause", "schedule.resume"]


def test_pausing_twice_changes_nothing_the_second_time(world: Any, lab: Any) -> None:
    schedule = make_schedule(world, paused=True)
    response = signed_in(world.operator).post(url(world, f"{schedule.uuid}/pause/"), follow=True)
    assert "was already paused" in text(response)
    assert not AuditEntry.objects.filter(action="schedule.pause").exists()


def test_a_viewer_cannot_pause_resume_edit_or_delete(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    client = signed_in(world.viewer)
    for action in ("pause/", "resume/", "delete/", "edit/"):
        assert client.post(url(world, f"{schedule.uuid}/{action}"), form_data()).status_code == 403
    assert client.get(url(world, f"{schedule.uuid}/edit/")).status_code == 403
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.cron == "0 3 * * *"


def test_pausing_requires_post(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    assert signed_in(world.operator).get(url(world, f"{schedule.uuid}/pause/")).status_code == 405


def test_an_operator_edits_the_cron_and_the_name_stays(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    client = signed_in(world.operator)
    page = text(client.get(url(world, f"{schedule.uuid}/edit/")))
    assert 'value="0 3 * * *"' in page and "cannot be changed" in page
    response = client.post(url(world, f"{schedule.uuid}/edit/"),
                           form_data(name="renamed", cron="@every 30s", time_zone="UTC"))
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron) == ("nightly", "@every 30s")
    assert AuditEntry.objects.filter(action="schedule.update").exists()


def test_a_bad_cron_on_edit_changes_nothing(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    response = signed_in(world.operator).post(url(world, f"{schedule.uuid}/edit/"), form_data(cron="61 * * * *"))
    assert response.status_code == 400 and errors_of(response, "cron")
    schedule.refresh_from_db()
    assert schedule.cron == "0 3 * * *" and not AuditEntry.objects.filter(action="schedule.update").exists()


def test_an_operator_deletes_a_schedule_after_confirming(world: Any, lab: Any) -> None:
    schedule = make_schedule(world)
    client = signed_in(world.operator)
    assert "Yes, delete this schedule" in text(client.get(url(world, f"{schedule.uuid}/")))
    response = client.post(url(world, f"{schedule.uuid}/delete/"), follow=True)
    assert response.redirect_chain[-1][0] == url(world)
    assert "Deleted schedule nightly" in text(response)
    assert not Schedule.objects.exists()


# Schedules of workflow nodes ---------------------------------------------------------------------------


def node_owned_schedule(world: Any, lab: Any) -> Schedule:
    flow = services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": {"entry": "wait", "templates": [
        {"name": "wait", "templateType": "Suspend", "deadline": "10m"}]}})
    wr = workflows.start_workflow(SYSTEM, flow, lab[0], dry_run=True)
    return Schedule.objects.create(tenant=world.acme, name="flow.node.1234", cron="@every 10s",
                                   environment=lab[0], workflow_node=wr.nodes.get())


def test_a_workflow_nodes_schedule_can_be_seen_but_not_changed(world: Any, lab: Any) -> None:
    schedule = node_owned_schedule(world, lab)
    client = signed_in(world.owner)
    page = text(client.get(url(world, f"{schedule.uuid}/")))
    assert "It belongs to a Schedule node of a workflow run" in page
    assert url(world, f"{schedule.uuid}/pause/") not in page
    response = client.post(url(world, f"{schedule.uuid}/pause/"), follow=True)
    assert "belongs to a node of a workflow run" in text(response)
    assert client.post(url(world, f"{schedule.uuid}/delete/")).status_code == 302
    schedule.refresh_from_db()
    assert not schedule.paused
