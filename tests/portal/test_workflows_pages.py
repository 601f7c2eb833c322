"""The workflows pages through Django's test Client: the list, creating from YAML or step by step, a
workflow's drawn tree, starting a run, a workflow run's page with each node's state and its live JSON,
abort and delete, for owner, operator, viewer and outsider. Tasks published on commit are never
published here (the test's transaction does not commit): the engine is stepped with workflows.advance."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments import services, workflows
from experiments.models import CheckRun, Run, Schedule, Workflow, WorkflowNode, WorkflowRun
from tenants.models import AuditEntry, Policy
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.portal.test_portal import signed_in, text

pytestmark = pytest.mark.django_db
NPhase = WorkflowNode.Phase

STRESS = {"action": "stress-cpu", "mode": "all", "selector": {}, "duration": "60s",
          "stress-cpu": {"load": 10, "workers": 1}}
SPEC = {"entry": "main", "templates": [
    {"name": "main", "templateType": "Serial", "deadline": "10m", "children": ["cpu", "both"]},
    {"name": "cpu", "templateType": "PhysicalMachineChaos", "deadline": "2m", "physicalmachineChaos": STRESS},
    {"name": "both", "templateType": "Parallel", "children": ["rest", "check"]},
    {"name": "rest", "templateType": "Suspend", "deadline": "30s"},
    {"name": "check", "templateType": "StatusCheck", "deadline": "1m", "statusCheck": {
        "type": "HTTP", "http": {"url": "http://127.0.0.1:9/health", "criteria": {"statusCode": "200"}}}},
]}
PATHS = ["main", "main/cpu", "main/both", "main/both/rest", "main/both/check"]

MANIFEST = """\
apiVersion: chaos-mesh.org/v1alpha1
kind: Workflow
metadata:
  name: game-day
  labels: {{team: sre}}
spec:
  entry: main
  templates:
    - name: main
      templateType: Serial
      children: [cpu, rest]
    - name: cpu
      templateType: PhysicalMachineChaos
      deadline: {deadline}
      physicalmachineChaos:
        action: stress-cpu
        mode: all
        selector: {{}}
        stress-cpu: {{load: 10, workers: 1}}
    - name: rest
      templateType: Suspend
      deadline: 30s
"""


@pytest.fixture
def lab(world: Any) -> Any:
    return hosts_environment(world.acme)


@pytest.fixture
def flow(world: Any) -> Workflow:
    return services.save_workflow(SYSTEM, world.acme, {"name": "flow", "spec": SPEC})


def url(tail: str = "") -> str:
    return f"/t/acme/workflows/{tail}"


def run_url(wr: WorkflowRun, tail: str = "") -> str:
    return f"/t/acme/workflow-runs/{wr.uuid}/{tail}"


def tree_nodes(page: str) -> dict[str, str]:
    """Each drawn node's data-path and its classes."""
    return {m.group(2): m.group(1) for m in re.finditer(r'<div class="(wf-node [^"]*)" data-path="([^"]+)"', page)}


def state_of(page: str, node_path: str) -> str:
    classes = tree_nodes(page)[node_path]
    return re.search(r"state-(\w+)", classes).group(1)


def start(world: Any, flow: Workflow, lab: Any) -> WorkflowRun:
    return workflows.start_workflow(SYSTEM, flow, lab, dry_run=True)


# The list ------------------------------------------------------------------------------------------


def test_the_list_says_what_to_do_when_there_are_no_workflows(world: Any) -> None:
    assert "No workflows yet" in text(signed_in(world.operator).get(url()))
    page = text(signed_in(world.viewer).get(url()))
    assert "Operators and owners create them" in page and url("new/") not in page


@pytest.mark.parametrize("member", ["owner", "operator", "viewer"])
def test_every_member_sees_the_workflows_and_their_latest_run(world: Any, flow: Workflow, lab: Any,
                                                             member: str) -> None:
    wr = start(world, flow, lab)
    page = text(signed_in(world.member(member)).get(url()))
    assert f'href="{url(f"{flow.uuid}/")}"' in page and f'href="{run_url(wr)}"' in page
    assert (url("new/") in page) == (member != "viewer")


def test_an_outsider_gets_404_everywhere(world: Any, flow: Workflow, lab: Any) -> None:
    wr = start(world, flow, lab)
    client = signed_in(world.outsider)
    for address in (url(), url("new/"), url(f"{flow.uuid}/"), run_url(wr), run_url(wr, "live/")):
        assert client.get(address).status_code == 404, address
    for address in (url(f"{flow.uuid}/start/"), url(f"{flow.uuid}/delete/"), run_url(wr, "abort/")):
        assert client.post(address, {"environment": "lab"}).status_code == 404, address
    assert WorkflowRun.objects.get().phase == "running" and Workflow.objects.exists()


def test_another_tenants_workflow_and_run_are_404_inside_mine(world: Any) -> None:
    theirs = services.save_workflow(SYSTEM, world.globex, {"name": "theirs", "spec": SPEC})
    wr = workflows.start_workflow(SYSTEM, theirs, hosts_environment(world.globex), dry_run=True)
    client = signed_in(world.owner)
    assert client.get(url(f"{theirs.uuid}/")).status_code == 404
    assert client.get(run_url(wr)).status_code == 404 and client.get(run_url(wr, "live/")).status_code == 404
    assert client.post(run_url(wr, "abort/")).status_code == 404
    assert client.post(url(f"{theirs.uuid}/start/"), {"environment": "lab"}).status_code == 404
    wr.refresh_from_db()
    assert wr.phase == "running" and WorkflowRun.objects.count() == 1


# Creating ------------------------------------------------------------------------------------------


def test_a_viewer_gets_no_form_and_cannot_create(world: Any) -> None:
    client = signed_in(world.viewer)
    assert client.get(url("new/")).status_code == 403
    response = client.post(url("new/"), {"source": "yaml", "manifest": MANIFEST.format(deadline="2m")})
    assert response.status_code == 403 and not Workflow.objects.exists()


def test_an_operator_creates_a_workflow_from_a_manifest(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), {"source": "yaml",
                                                            "manifest": MANIFEST.format(deadline="2m")})
    flow = Workflow.objects.get()
    assert response.status_code == 302 and response["Location"] == url(f"{flow.uuid}/")
    assert flow.name == "game-day" and flow.labels == {"team": "sre"}
    assert [t["name"] for t in flow.spec["templates"]] == ["main", "cpu", "rest"]
    assert AuditEntry.objects.filter(action="workflow.create", actor_label="bob").exists()


def test_a_spec_alone_needs_a_name(world: Any) -> None:
    spec = "entry: wait\ntemplates:\n  - {name: wait, templateType: Suspend, deadline: 5s}\n"
    client = signed_in(world.operator)
    response = client.post(url("new/"), {"source": "yaml", "manifest": spec})
    assert response.status_code == 400 and "is required when the YAML is only a spec" in text(response)
    assert client.post(url("new/"), {"source": "yaml", "manifest": spec, "name": "pause"}).status_code == 302
    assert Workflow.objects.get().spec["entry"] == "wait"


def test_a_bad_deadline_in_the_yaml_is_named_by_its_path_and_nothing_is_created(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), {"source": "yaml",
                                                            "manifest": MANIFEST.format(deadline="soon")})
    assert response.status_code == 400
    errors = response.context["yaml_form"].errors["manifest"]
    assert any(e.startswith("spec.templates[1].deadline: ") for e in errors), errors
    group = text(response).split('<label for="id_manifest"', 1)[1].split("<label", 1)[0]
    assert "spec.templates[1].deadline" in group
    assert not Workflow.objects.exists() and not AuditEntry.objects.filter(action="workflow.create").exists()


@pytest.mark.parametrize(("manifest", "message"), [
    ("entry: [unclosed", "not valid YAML"),
    ("apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {name: x}\nspec: {}\n", "is not Workflow"),
    ("- just\n- a list\n", "give one YAML document"),
    ("apiVersion: chaos-mesh.org/v1alpha1\nkind: Workflow\nmetadata: {name: Bad_Name}\nspec: {}\n",
     "metadata.name: "),
])
def test_yaml_that_is_not_a_workflow_is_refused_on_the_field(world: Any, manifest: str, message: str) -> None:
    response = signed_in(world.operator).post(url("new/"), {"source": "yaml", "manifest": manifest})
    assert response.status_code == 400
    assert any(message in e for e in response.context["yaml_form"].errors["manifest"])
    assert not Workflow.objects.exists()


def test_a_taken_name_from_the_manifest_is_reported(world: Any) -> None:
    client = signed_in(world.operator)
    client.post(url("new/"), {"source": "yaml", "manifest": MANIFEST.format(deadline="2m")})
    response = client.post(url("new/"), {"source": "yaml", "manifest": MANIFEST.format(deadline="2m")})
    assert response.status_code == 400 and Workflow.objects.count() == 1
    assert "metadata.name: a workflow named 'game-day' already exists" in response.context["yaml_form"].errors[
        "manifest"]


def steps_data(*steps: tuple[str, str, str], name: str = "steps", mode: str = "Serial", extra: int = 0) -> dict:
    data = {"source": "steps", "name": name, "description": "", "mode": mode,
            "step-TOTAL_FORMS": str(len(steps) + extra), "step-INITIAL_FORMS": "0", "step-MIN_NUM_FORMS": "0",
            "step-MAX_NUM_FORMS": "1000"}
    for index, (kind, experiment, deadline) in enumerate(steps):
        data |= {f"step-{index}-kind": kind, f"step-{index}-experiment": experiment,
                 f"step-{index}-deadline": deadline}
    for index in range(len(steps), len(steps) + extra):  # rows left as the form offered them
        data |= {f"step-{index}-kind": "experiment", f"step-{index}-experiment": "", f"step-{index}-deadline": ""}
    return data


def test_a_workflow_made_step_by_step_inlines_each_experiments_chaos(world: Any) -> None:
    cpu = host_experiment(world.acme, "cpu")
    response = signed_in(world.operator).post(url("new/"), steps_data(
        ("experiment", "cpu", "2m"), ("suspend", "", "30s"), ("experiment", "cpu", ""), extra=2))
    assert response.status_code == 302, response.context and response.context["steps"].errors
    spec = Workflow.objects.get(name="steps").spec
    assert spec["entry"] == "main"
    main, first, wait, second = spec["templates"]
    assert main == {"name": "main", "templateType": "Serial", "children": ["cpu", "suspend-2", "cpu-2"]}
    assert first == {"name": "cpu", "templateType": "PhysicalMachineChaos", "deadline": "2m0s",
                     "physicalmachineChaos": services.experiment_definition(cpu).spec()}
    assert wait == {"name": "suspend-2", "templateType": "Suspend", "deadline": "30s"}
    assert second["name"] == "cpu-2" and "deadline" not in second


def test_parallel_steps_run_under_a_parallel_entry(world: Any) -> None:
    host_experiment(world.acme, "cpu")
    host_experiment(world.acme, "mem")
    signed_in(world.owner).post(url("new/"), steps_data(("experiment", "cpu", "1m"), ("experiment", "mem", "1m"),
                                                        mode="Parallel"))
    main = Workflow.objects.get().spec["templates"][0]
    assert main["templateType"] == "Parallel" and main["children"] == ["cpu", "mem"]


def test_a_bad_step_deadline_is_shown_on_that_step_and_nothing_is_created(world: Any) -> None:
    host_experiment(world.acme, "cpu")
    response = signed_in(world.operator).post(url("new/"), steps_data(("experiment", "cpu", "1m"),
                                                                      ("suspend", "", "a while")))
    assert response.status_code == 400
    steps = response.context["steps"]
    assert not steps.forms[0].errors and steps.forms[1].errors["deadline"]
    assert not Workflow.objects.exists()


@pytest.mark.parametrize(("steps", "field", "message"), [
    ((("experiment", "", "1m"),), "experiment", "Choose the experiment"),
    ((("suspend", "", ""),), "deadline", "A suspend needs a duration"),
    ((("experiment", "nonexistent", "1m"),), "experiment", "Select a valid choice"),
])
def test_an_incomplete_step_is_shown_on_its_field(world: Any, steps: Any, field: str, message: str) -> None:
    host_experiment(world.acme, "cpu")
    response = signed_in(world.operator).post(url("new/"), steps_data(*steps))
    assert response.status_code == 400
    assert message in " ".join(response.context["steps"].forms[0].errors[field])
    assert not Workflow.objects.exists()


def test_steps_need_at_least_one_step(world: Any) -> None:
    host_experiment(world.acme, "cpu")
    response = signed_in(world.operator).post(url("new/"), steps_data(extra=3))
    assert response.status_code == 400 and "Add at least one step" in text(response)


def test_the_steps_form_says_what_to_do_without_experiments(world: Any) -> None:
    page = text(signed_in(world.operator).get(url("new/")))
    assert "You have no experiments to make steps of yet" in page and 'name="manifest"' in page


# A workflow's page -----------------------------------------------------------------------------------


def test_the_tree_is_drawn_with_one_box_per_node(world: Any, flow: Workflow) -> None:
    page = text(signed_in(world.viewer).get(url(f"{flow.uuid}/")))
    nodes = tree_nodes(page)
    assert list(nodes) == PATHS
    assert "wf-serial" in nodes["main"] and "wf-parallel" in nodes["main/both"] and "wf-leaf" in nodes["main/cpu"]
    assert "deadline 2m0s" in page and "stress-cpu for 1m0s" in page and "HTTP check" in page
    assert "kind: Workflow" in page and "name: flow" in page  # its YAML


def test_a_viewer_sees_neither_start_nor_delete(world: Any, flow: Workflow, lab: Any) -> None:
    viewer = text(signed_in(world.viewer).get(url(f"{flow.uuid}/")))
    operator = text(signed_in(world.operator).get(url(f"{flow.uuid}/")))
    for action in ("start/", "delete/"):
        assert url(f"{flow.uuid}/{action}") not in viewer and url(f"{flow.uuid}/{action}") in operator
    assert 'value="lab"' in operator


def test_without_an_environment_the_page_says_so(world: Any, flow: Workflow) -> None:
    page = text(signed_in(world.operator).get(url(f"{flow.uuid}/")))
    assert "There is no environment you may run against yet" in page


def test_an_operator_starts_a_dry_run_and_lands_on_its_page(world: Any, flow: Workflow, lab: Any) -> None:
    client = signed_in(world.operator)
    response = client.post(url(f"{flow.uuid}/start/"), {"environment": "lab", "dry_run": "true"})
    wr = WorkflowRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_url(wr)
    assert (wr.dry_run, wr.origin, wr.environment_name, wr.created_by) == (True, "portal", "lab", world.operator.user)
    page = text(client.get(response["Location"]))
    assert "Started a dry run of flow against lab." in page
    assert {state_of(page, p) for p in PATHS} == {"pending"}


def test_a_viewer_cannot_start_a_run(world: Any, flow: Workflow, lab: Any) -> None:
    response = signed_in(world.viewer).post(url(f"{flow.uuid}/start/"), {"environment": "lab", "dry_run": "true"})
    assert response.status_code == 403 and not WorkflowRun.objects.exists()


def test_starting_without_an_environment_is_refused_on_the_field(world: Any, flow: Workflow, lab: Any) -> None:
    response = signed_in(world.operator).post(url(f"{flow.uuid}/start/"), {"environment": "", "dry_run": ""})
    assert response.status_code == 400 and response.context["start_form"].errors["environment"]
    assert not WorkflowRun.objects.exists()


def test_a_run_the_policy_refuses_is_shown_as_refused(world: Any, flow: Workflow, lab: Any) -> None:
    Policy.objects.update_or_create(tenant=world.acme, defaults={"max_concurrent_runs": 0})
    response = signed_in(world.operator).post(url(f"{flow.uuid}/start/"), {"environment": "lab", "dry_run": "false"},
                                              follow=True)
    assert WorkflowRun.objects.get().phase == "failed"
    assert "The tenant&#x27;s policy refused this run" in text(response)


def test_an_operator_deletes_a_workflow(world: Any, flow: Workflow) -> None:
    response = signed_in(world.operator).post(url(f"{flow.uuid}/delete/"), follow=True)
    assert response.redirect_chain[-1][0] == url() and "Deleted workflow flow" in text(response)
    assert not Workflow.objects.exists()


def test_a_scheduled_workflow_is_not_deleted(world: Any, flow: Workflow, lab: Any) -> None:
    services.save_schedule(SYSTEM, world.acme, {"name": "nightly", "cron": "@daily", "workflow": "flow",
                                                "environment": "lab"})
    response = signed_in(world.operator).post(url(f"{flow.uuid}/delete/"), follow=True)
    assert "flow was not deleted: the schedules nightly run this workflow" in text(response)
    assert Workflow.objects.exists() and Schedule.objects.exists()


def test_a_viewer_cannot_delete_a_workflow(world: Any, flow: Workflow) -> None:
    assert signed_in(world.viewer).post(url(f"{flow.uuid}/delete/")).status_code == 403
    assert Workflow.objects.exists()


# A workflow run's page ---------------------------------------------------------------------------------


def test_each_node_is_drawn_with_its_state_as_the_run_moves(world: Any, flow: Workflow, lab: Any) -> None:
    wr = start(world, flow, lab)
    workflows.advance(wr.pk)
    client = signed_in(world.viewer)
    page = text(client.get(run_url(wr)))
    assert list(tree_nodes(page)) == PATHS
    assert [state_of(page, p) for p in PATHS] == ["running", "running", "pending", "pending", "pending"]
    assert '<span class="wf-phase">running</span>' in page
    run = Run.objects.get(workflow_node__path="main/cpu")
    assert page.count(f'href="/t/acme/runs/{run.uuid}/"') >= 2  # in its node, and among the fault runs

    WorkflowNode.objects.filter(workflow_run=wr, path="main/cpu").update(phase=NPhase.FAILED, message="no target",
                                                                         finished_at=timezone.now())
    workflows.advance(wr.pk)
    page = text(client.get(run_url(wr)))
    assert state_of(page, "main/cpu") == "failed" and "no target" in page
    assert [state_of(page, p) for p in PATHS[2:]] == ["running", "running", "running"]


def test_the_live_json_has_every_nodes_state_times_and_runs(world: Any, flow: Workflow, lab: Any) -> None:
    wr = start(world, flow, lab)
    workflows.advance(wr.pk)
    body = signed_in(world.viewer).get(run_url(wr, "live/")).json()
    assert (body["phase"], body["ended"]) == ("running", False)
    nodes = {n["path"]: n for n in body["nodes"]}
    assert list(nodes) == PATHS
    assert nodes["main/cpu"]["phase"] == "running" and nodes["main/cpu"]["started_at"]
    run = Run.objects.get(workflow_node__path="main/cpu")
    assert nodes["main/cpu"]["runs"] == [{"id": str(run.uuid), "phase": run.phase,
                                          "url": f"/t/acme/runs/{run.uuid}/"}]
    assert nodes["main/both/rest"]["started_at"] is None


def test_the_live_json_takes_a_constant_number_of_queries(world: Any, flow: Workflow, lab: Any,
                                                          django_assert_max_num_queries: Any) -> None:
    wr = start(world, flow, lab)
    workflows.advance(wr.pk)
    client = signed_in(world.viewer)
    client.get(run_url(wr, "live/"))
    with django_assert_max_num_queries(12):
        client.get(run_url(wr, "live/"))


def test_a_check_nodes_results_are_shown(world: Any, flow: Workflow, lab: Any) -> None:
    wr = start(world, flow, lab)
    node = wr.nodes.get(path="main/both/check")
    check = CheckRun.objects.create(tenant=world.acme, name="flow/check", spec={}, purpose="node", workflow_node=node,
                                    probes=2, failures=1, phase="running")
    check.results.create(ok=True, latency_ms=12, detail="HTTP 200")
    check.results.create(ok=False, latency_ms=30, detail="HTTP 503")
    page = text(signed_in(world.viewer).get(run_url(wr)))
    assert "HTTP 503" in page and "HTTP 200" in page and page.index("HTTP 503") < page.index("HTTP 200")
    assert "2 probes" in page


def test_a_viewer_sees_no_abort_button_and_cannot_abort(world: Any, flow: Workflow, lab: Any) -> None:
    wr = start(world, flow, lab)
    client = signed_in(world.viewer)
    assert run_url(wr, "abort/") not in text(client.get(run_url(wr)))
    assert client.post(run_url(wr, "abort/")).status_code == 403
    wr.refresh_from_db()
    assert wr.phase == "running"


def test_an_operator_aborts_a_run(world: Any, flow: Workflow, lab: Any) -> None:
    wr = start(world, flow, lab)
    workflows.advance(wr.pk)
    client = signed_in(world.operator)
    assert run_url(wr, "abort/") in text(client.get(run_url(wr)))
    response = client.post(run_url(wr, "abort/"), follow=True)
    wr.refresh_from_db()
    assert wr.phase == "aborted"
    page = text(response)
    assert "Aborted this run of flow" in page and run_url(wr, "abort/") not in page
    assert [state_of(page, p) for p in PATHS] == ["aborted", "aborted", "skipped", "skipped", "skipped"]
    assert "WorkflowAborted" in page  # among its events
    assert signed_in(world.viewer).get(run_url(wr, "live/")).json()["ended"] is True

    again = client.post(run_url(wr, "abort/"), follow=True)
    assert "had already ended (aborted)" in text(again)


def test_the_example_on_the_form_makes_a_workflow(world: Any) -> None:
    client = signed_in(world.operator)
    page = text(client.get(url("new/")))
    example = html.unescape(re.search(r"<summary>An example</summary>\s*<pre>(.*?)</pre>", page, re.S).group(1))
    assert client.post(url("new/"), {"source": "yaml", "manifest": example}).status_code == 302
    assert Workflow.objects.get().name == "game-day"


def test_the_list_takes_a_constant_number_of_queries(world: Any, flow: Workflow, lab: Any) -> None:
    client = signed_in(world.viewer)
    with CaptureQueriesContext(connection) as few:
        client.get(url())
    for index in range(4):
        more = services.save_workflow(SYSTEM, world.acme, {"name": f"more-{index}", "spec": SPEC})
        start(world, more, lab)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url()).status_code == 200
    assert len(many) == len(few)
