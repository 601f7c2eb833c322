"""The experiments pages through Django's test Client: the list and its filters, the catalogue and the
form generated from it (errors on their fields), the previews of targets and manifest, the import of a
pasted manifest, an experiment's page, run, dry run, edit and delete, for owner, operator, viewer and
outsider."""
from __future__ import annotations

import html
import importlib
import json
import pkgutil
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import services
from experiments.models import Experiment, Run, Schedule
from experiments.portal.experiment_form import ExperimentForm, StoredValues
from experiments.portal.experiments import api_fields
from injector import manifests
from injector.faults import KINDS
from tenants.models import Policy
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment
from tests.injector import cases
from tests.portal.test_portal import signed_in, text

pytestmark = pytest.mark.django_db

MEMBERS = ["owner", "operator", "viewer"]


@pytest.fixture
def lab(world: Any) -> Any:
    """A hosts environment (host-0 and host-2 are tier=web, host-1 tier=db) and a host experiment."""
    return hosts_environment(world.acme), host_experiment(world.acme, "cpu")


def network_delay(world: Any, name: str = "slow-cart", **extra: Any) -> Experiment:
    data = {"name": name, "kind": "NetworkChaos", "action": "delay", "params": {"delay": {"latency": "100ms"}},
            "selector": {"namespaces": ["shop"], "labelSelectors": {"app": "cart"}}, "mode": "all",
            "duration": "30s", "labels": {"team": "payments"}, **extra}
    return services.create_experiment(SYSTEM, world.acme, data)


def delay_form(**overrides: Any) -> dict[str, Any]:
    """The generated form of NetworkChaos delay, filled in as a person would."""
    return {"name": "slow-cart", "description": "Is the checkout patient?", "labels:key": ["team", ""],
            "labels:value": ["payments", ""], "namespace": "", "kind": "NetworkChaos", "action": "delay",
            "params.delay.latency": "100ms", "params.delay.jitter": "", "params.direction": "",
            "selector.namespaces": "shop", "selector.labelSelectors:key": ["app"],
            "selector.labelSelectors:value": ["cart"], "mode": "all", "value": "", "duration": "30s",
            "status_checks": "", **overrides}


def host_form(**overrides: Any) -> dict[str, Any]:
    return {"name": "web-cpu", "kind": "PhysicalMachineChaos", "action": "stress-cpu",
            "params.stress-cpu.load": "20", "params.stress-cpu.workers": "1", "mode": "all", "duration": "1m",
            "selector.labelSelectors:key": ["tier"], "selector.labelSelectors:value": ["web"], **overrides}


def field_html(page: str, name: str) -> str:
    """The markup of one input of the generated form: from its element to the next field's."""
    start = page.index(f'data-field="{name}"')
    end = page.find("data-field=", start + 12)
    return html.unescape(page[start: end if end != -1 else None])


def url(tail: str = "") -> str:
    return f"/t/acme/experiments/{tail}"


# The list ----------------------------------------------------------------------------------------


def test_the_list_says_what_to_do_when_there_are_no_experiments(world: Any) -> None:
    page = text(signed_in(world.operator).get(url()))
    assert "No experiments yet" in page and 'href="/t/acme/experiments/new/"' in page
    viewer_page = text(signed_in(world.viewer).get(url()))
    assert "Operators and owners create them" in viewer_page and "New experiment</a>" not in viewer_page


@pytest.mark.parametrize("member", MEMBERS)
def test_every_member_sees_each_experiment_with_kind_targets_duration_labels_and_last_run(
    world: Any, lab: Any, member: str
) -> None:
    env, cpu = lab
    network_delay(world)
    run = services_run(world, cpu, env)

    response = signed_in(getattr(world, member)).get(url())

    assert response.status_code == 200
    page = text(response)
    assert f'href="/t/acme/experiments/{cpu.uuid}/"' in page
    assert "NetworkChaos" in page and "delay" in page and "PhysicalMachineChaos" in page
    assert "in shop; app=cart" in page and "mode: all" in page and "30s" in page
    assert "team=payments" in page
    assert f'href="/t/acme/runs/{run.uuid}/"' in page and "never run" in page
    assert ("New experiment</a>" in page) == (member != "viewer")


def services_run(world: Any, experiment: Experiment, env: Any, dry_run: bool = True) -> Run:
    from experiments import runs

    return runs.start_run(SYSTEM, experiment, env.name, dry_run=dry_run)


@pytest.mark.parametrize(
    "query,shown,hidden",
    [
        ("kind=NetworkChaos", "slow-cart", "cpu"),
        ("label=team%3Dpayments", "slow-cart", "cpu"),
        ("label=team", "slow-cart", "cpu"),
        ("q=patient", "slow-cart", "cpu"),
        ("q=CPU", "cpu", "slow-cart"),
    ],
    ids=["kind", "label-key-value", "label-key", "text-in-description", "text-in-name"],
)
def test_the_list_filters_by_kind_label_and_text(world: Any, lab: Any, query: str, shown: str, hidden: str) -> None:
    network_delay(world, description="Is the checkout patient?")

    page = text(signed_in(world.viewer).get(url(f"?{query}")))

    assert f">{shown}</a>" in page and f">{hidden}</a>" not in page
    assert "Clear filters" in page


def test_filters_that_match_nothing_say_so(world: Any, lab: Any) -> None:
    page = text(signed_in(world.viewer).get(url("?kind=DNSChaos")))
    assert "No experiment matches these filters" in page


def test_the_list_takes_a_constant_number_of_queries(world: Any, lab: Any) -> None:
    client = signed_in(world.viewer)
    client.get(url())
    with CaptureQueriesContext(connection) as few:
        client.get(url())
    env, _ = lab
    for i in range(5):
        experiment = host_experiment(world.acme, f"cpu-{i}")
        services_run(world, experiment, env)
    with CaptureQueriesContext(connection) as many:
        assert text(client.get(url())).count("never run") == 1
    assert len(many) == len(few)


def test_an_outsider_gets_404_for_every_experiments_page(world: Any, lab: Any) -> None:
    _, cpu = lab
    client = signed_in(world.outsider)
    for tail in ("", "new/", "new/?kind=NetworkChaos", f"{cpu.uuid}/", f"{cpu.uuid}/edit/", f"{cpu.uuid}/delete/"):
        assert client.get(url(tail)).status_code == 404, tail
    for tail in ("new/", "preview/", "yaml/", "import/", f"{cpu.uuid}/run/", f"{cpu.uuid}/delete/"):
        assert client.post(url(tail), {}).status_code == 404, tail


def test_another_tenants_experiment_is_a_404_inside_my_tenant(world: Any) -> None:
    theirs = services.create_experiment(SYSTEM, world.globex, {
        "name": "theirs", "kind": "PodChaos", "action": "pod-kill", "selector": {}, "mode": "one"})
    client = signed_in(world.owner)
    for tail in (f"{theirs.uuid}/", f"{theirs.uuid}/edit/", f"{theirs.uuid}/delete/"):
        assert client.get(url(tail)).status_code == 404
    assert client.post(url(f"{theirs.uuid}/delete/")).status_code == 404
    assert Experiment.objects.filter(pk=theirs.pk).exists()


# The catalogue and the generated form --------------------------------------------------------------


def test_the_catalogue_lists_every_kind_and_action_for_operators(world: Any) -> None:
    page = text(signed_in(world.operator).get(url("new/")))
    for kind in KINDS.values():
        assert kind.label in page
        for action in kind.actions:
            assert f"?kind={kind.name}&amp;action={action.name}" in page
    assert 'name="manifest"' in page


def test_a_viewer_gets_no_form(world: Any) -> None:
    client = signed_in(world.viewer)
    assert client.get(url("new/")).status_code == 403
    assert client.get(url("new/?kind=NetworkChaos&action=delay")).status_code == 403
    assert client.post(url("new/"), delay_form()).status_code == 403
    assert not Experiment.objects.exists()


def test_the_form_has_one_input_per_parameter_with_its_help_unit_default_and_choices(world: Any) -> None:
    page = text(signed_in(world.operator).get(url("new/?kind=NetworkChaos&action=delay")))

    latency = field_html(page, "params.delay.latency")
    assert 'name="params.delay.latency"' in latency and "Added delay, e.g. 100ms." in latency
    assert "required" in latency
    direction = field_html(page, "params.direction")
    assert "<select" in direction and '<option value="both">' in direction and "Default (to)" in direction
    correlation = field_html(page, "params.delay.correlation")
    assert 'class="xp-unit">%<' in correlation
    gap = field_html(page, "params.delay.reorder.gap")
    assert 'type="number"' in gap and "Required when Reorder is used." in gap
    assert 'name="selector.labelSelectors:key"' in page and 'name="selector.namespaces"' in page
    assert '<option value="fixed-percent">' in field_html(page, "mode")


def test_an_int_with_a_unit_is_a_number_with_its_unit(world: Any) -> None:
    page = text(signed_in(world.operator).get(url("new/?kind=NetworkChaos&action=bandwidth")))
    limit = field_html(page, "params.bandwidth.limit")
    assert 'type="number"' in limit and 'min="1"' in limit and 'class="xp-unit">bytes<' in limit
    rate = field_html(page, "params.bandwidth.rate")
    assert 'type="text"' in rate and "1mbps" in rate


def test_a_host_kind_offers_agents_and_a_cloud_kind_no_selector(world: Any) -> None:
    client = signed_in(world.operator)
    host = text(client.get(url("new/?kind=PhysicalMachineChaos&action=stress-cpu")))
    assert 'name="selector.agents"' in host and 'name="params.stress-cpu.workers"' in host
    assert 'name="params.address"' not in host  # deprecated, and never goes with a selector
    cloud = text(client.get(url("new/?kind=AWSChaos&action=ec2-stop")))
    assert 'name="selector.namespaces"' not in cloud and 'name="mode"' not in cloud
    assert "names its resource in its parameters" in cloud


def test_an_operator_creates_an_experiment_and_lands_on_its_page(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), delay_form())

    experiment = Experiment.objects.get(tenant=world.acme, name="slow-cart")
    assert response.status_code == 302 and response["Location"] == url(f"{experiment.uuid}/")
    assert experiment.params == {"delay": {"latency": "100ms"}}
    assert experiment.selector == {"namespaces": ["shop"], "labelSelectors": {"app": "cart"}}
    assert (experiment.mode, experiment.duration, experiment.labels) == ("all", "30s", {"team": "payments"})
    assert experiment.description == "Is the checkout patient?"
    assert experiment.created_by == world.operator.user


def test_numbers_lists_and_status_checks_reach_the_service_typed(world: Any) -> None:
    checks = "- name: up\n  abort: true\n  spec:\n    type: HTTP\n    http:\n      url: http://shop/\n" \
             "      criteria:\n        statusCode: '200'\n"
    signed_in(world.owner).post(url("new/"), host_form(**{
        "params.stress-cpu.options": "--cpu-method matrixprod\n", "status_checks": checks, "mode": "fixed",
        "value": "2", "selector.agents": "host-0\nhost-2"}))

    experiment = Experiment.objects.get(name="web-cpu")
    assert experiment.params == {"stress-cpu": {"load": 20, "workers": 1, "options": ["--cpu-method matrixprod"]}}
    assert experiment.selector == {"agents": ["host-0", "host-2"], "labelSelectors": {"tier": "web"}}
    assert (experiment.mode, experiment.mode_value) == ("fixed", 2)
    assert experiment.status_checks[0]["name"] == "up" and experiment.status_checks[0]["abort"] is True


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("duration", "soon", '"soon" is not a duration'),
        ("params.delay.latency", "fast", '"fast" is not a duration'),
        ("params.delay.latency", "", "is required"),
        ("params.delay.reorder.gap", "many", "is not a whole number"),
        ("selector.namespaces", "Shop_Front", "is not valid: a namespace name"),
        ("value", "3", "must be empty with mode all"),
        ("name", "Slow Cart", "is not valid"),
        ("status_checks", "- name: up\n  spec: {type: HTTP}", "is required with type HTTP"),
        ("status_checks", "[unclosed", "is not valid YAML"),
    ],
)
def test_a_bad_value_is_shown_on_its_field_and_nothing_is_created(world: Any, field: str, value: str,
                                                                   message: str) -> None:
    extra = {"params.delay.reorder.reorder": "10"} if field == "params.delay.reorder.gap" else {}
    response = signed_in(world.operator).post(url("new/"), delay_form(**{field: value}, **extra))

    assert response.status_code == 400
    page = text(response)
    assert message in field_html(page, field)
    assert "Nothing was saved" in page
    assert not Experiment.objects.exists()


def test_a_label_selector_row_without_a_key_is_shown_on_the_rows(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), delay_form(**{
        "selector.labelSelectors:key": ["app", ""], "selector.labelSelectors:value": ["cart", "web"]}))
    assert response.status_code == 400
    assert "needs a key" in field_html(text(response), "selector.labelSelectors")


def test_a_taken_name_is_shown_on_the_name_field(world: Any) -> None:
    network_delay(world)
    response = signed_in(world.operator).post(url("new/"), delay_form())
    assert response.status_code == 400
    assert "already exists" in field_html(text(response), "name")
    assert Experiment.objects.count() == 1


def test_switching_kind_without_the_script_shows_the_new_kind_and_keeps_the_values(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), delay_form(kind="PodChaos", switch="1"))

    assert response.status_code == 200
    page = text(response)
    assert '<option value="pod-kill" selected>' in page and 'name="params.gracePeriod"' in page
    assert 'value="slow-cart"' in page and "Nothing was saved" not in page
    assert not Experiment.objects.exists()


def test_the_script_gets_only_the_kind_part_of_the_form(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), delay_form(action="loss", switch="1", partial="1"))
    page = text(response)
    assert 'name="params.loss.loss"' in page and 'name="params.delay.latency"' not in page
    assert "<html" not in page and 'name="name"' not in page
    assert 'name="selector.namespaces"' in page and "shop" in page


def test_add_a_row_without_the_script_gives_one_more_empty_row(world: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), delay_form(add_row="selector.labelSelectors"))
    assert field_html(text(response), "selector.labelSelectors").count('name="selector.labelSelectors:key"') == 3
    assert not Experiment.objects.exists()


def test_the_preview_without_the_script_comes_back_on_the_page(world: Any, lab: Any) -> None:
    response = signed_in(world.operator).post(url("new/"), host_form(environment="lab", preview="1"))
    assert response.status_code == 200
    page = text(response)
    assert "<strong>2</strong> of 2 candidates in lab" in page and "host-2 (host-2.lab)" in page
    assert Experiment.objects.count() == 1  # only the fixture's
    assert "Nothing was saved" not in page


def test_a_preview_without_the_script_shows_what_is_wrong_in_the_preview(world: Any, lab: Any) -> None:
    page = text(signed_in(world.operator).post(url("new/"), host_form(**{
        "environment": "lab", "preview": "1", "params.stress-cpu.load": "lots"})))
    assert "is not a whole number" in page.split("data-xp-preview-result")[1]
    assert "Nothing was saved" not in page


# Every case of the catalogue fits the form ------------------------------------------------------------

VALID = [
    pytest.param(text_, id=f"{module.KIND}-{i}")
    for module in [importlib.import_module(f"{cases.__name__}.{m.name}") for m in pkgutil.iter_modules(cases.__path__)]
    for i, text_ in enumerate(module.VALID)
]


def _editable(manifest: str) -> bool:
    """The form edits experiments with a selector (or cloud ones); the deprecated address list has none."""
    (definition,) = manifests.parse(manifest)
    return isinstance(definition, manifests.ExperimentDefinition) and (
        definition.selector is not None or definition.kind.selector == "cloud")


EDITABLE = [p for p in VALID if _editable(p.values[0])]


def test_only_address_list_host_experiments_are_left_out_of_the_form() -> None:
    left_out = [manifests.parse(p.values[0])[0] for p in VALID if p not in EDITABLE]
    assert left_out and all(d.kind.name == "PhysicalMachineChaos" and d.selector is None for d in left_out)


@pytest.mark.parametrize("manifest", EDITABLE)
def test_the_generated_form_shows_and_gives_back_every_valid_experiment_of_the_catalogue(manifest: str) -> None:
    (definition,) = manifests.parse(manifest)
    data = services._api_fields(definition)

    form = ExperimentForm(StoredValues(data), data["kind"], data["action"])
    again = services.build_definition(form.data())

    assert not [node.errors for node in form.flat_nodes() if node.errors]
    assert again.spec() == definition.spec()


def test_every_kind_and_action_renders_and_every_empty_form_error_finds_its_input() -> None:
    from django.core.exceptions import ValidationError
    from django.http import QueryDict

    from experiments.portal.experiment_form import PostedValues

    for kind in KINDS.values():
        for action in kind.actions:
            form = ExperimentForm(PostedValues(QueryDict("name=x&mode=one")), kind.name, action.name)
            try:
                services.build_definition(form.data())
            except ValidationError as error:
                assert form.add_errors(error) == [], (kind.name, action.name)


# An experiment's page ------------------------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS)
def test_every_member_sees_the_definition_runs_and_manifest(world: Any, lab: Any, member: str) -> None:
    env, cpu = lab
    run = services_run(world, cpu, env)

    response = signed_in(getattr(world, member)).get(url(f"{cpu.uuid}/"))

    assert response.status_code == 200
    page = text(response)
    assert "CPU stress" in page and "Workers" in page and "kind: PhysicalMachineChaos" in page
    assert f'href="/t/acme/runs/{run.uuid}/"' in page
    buttons = ("Edit</a>", "Delete…</a>", ">Run</button>", ">Dry run</button>")
    for button in buttons:
        assert (button in page) == (member != "viewer"), button


def test_an_experiment_never_run_says_how_to_start(world: Any, lab: Any) -> None:
    _, cpu = lab
    assert "Not run yet" in text(signed_in(world.operator).get(url(f"{cpu.uuid}/")))


def test_an_experiment_with_nowhere_to_run_says_so(world: Any) -> None:
    experiment = network_delay(world)
    page = text(signed_in(world.operator).get(url(f"{experiment.uuid}/")))
    assert "has no environment where a NetworkChaos can run" in page and ">Run</button>" not in page


def test_a_viewer_sees_the_targets_an_experiment_would_pick(world: Any, lab: Any) -> None:
    _, cpu = lab
    page = text(signed_in(world.viewer).get(url(f"{cpu.uuid}/?environment=lab")))
    assert "<strong>3</strong> of 3 candidates in lab" in page
    for host in ("host-0", "host-1", "host-2"):
        assert host in page


# Run and dry run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_an_operator_starts_a_run_and_lands_on_its_page(world: Any, lab: Any, dry_run: bool) -> None:
    _, cpu = lab
    response = signed_in(world.operator).post(url(f"{cpu.uuid}/run/"),
                                              {"environment": "lab", "dry_run": str(dry_run).lower()})

    run = Run.objects.get(experiment=cpu)
    assert response.status_code == 302 and response["Location"] == f"/t/acme/runs/{run.uuid}/"
    assert (run.dry_run, run.phase, run.origin, run.created_by) == (dry_run, "pending", "portal", world.operator.user)


def test_a_run_the_policy_refuses_goes_to_its_page_with_a_warning_naming_the_rule(world: Any, lab: Any) -> None:
    _, cpu = lab
    Policy.objects.filter(tenant=world.acme).update(max_duration_seconds=10)
    client = signed_in(world.operator)

    response = client.post(url(f"{cpu.uuid}/run/"), {"environment": "lab", "dry_run": "false"}, follow=True)

    run = Run.objects.get(experiment=cpu)
    assert run.phase == "refused"
    assert response.redirect_chain[0][0] == f"/t/acme/runs/{run.uuid}/"
    assert "The tenant&#x27;s policy refused this run" in text(response) and "max" in run.message.lower()


def test_a_run_against_an_unknown_environment_says_so_on_the_experiment(world: Any, lab: Any) -> None:
    _, cpu = lab
    response = signed_in(world.operator).post(url(f"{cpu.uuid}/run/"), {"environment": "nope"}, follow=True)
    assert response.redirect_chain[-1][0] == url(f"{cpu.uuid}/")
    assert "has no environment named" in text(response)
    assert not Run.objects.exists()


def test_a_viewer_cannot_run(world: Any, lab: Any) -> None:
    _, cpu = lab
    assert signed_in(world.viewer).post(url(f"{cpu.uuid}/run/"), {"environment": "lab"}).status_code == 403
    assert signed_in(world.viewer).get(url(f"{cpu.uuid}/run/")).status_code == 405
    assert not Run.objects.exists()


# Edit ------------------------------------------------------------------------------------------------


def test_the_edit_form_shows_the_experiment(world: Any) -> None:
    experiment = network_delay(world)
    page = text(signed_in(world.operator).get(url(f"{experiment.uuid}/edit/")))
    assert 'value="100ms"' in field_html(page, "params.delay.latency")
    assert 'value="cart"' in field_html(page, "selector.labelSelectors")
    assert ">\nshop</textarea>" in field_html(page, "selector.namespaces")
    assert 'value="30s"' in field_html(page, "duration")


def test_an_operator_edits_an_experiment(world: Any) -> None:
    experiment = network_delay(world)
    form = delay_form(**{"params.delay.latency": "250ms", "duration": "2m", "selector.namespaces": "shop\nweb"})

    response = signed_in(world.operator).post(url(f"{experiment.uuid}/edit/"), form)

    assert response.status_code == 302 and response["Location"] == url(f"{experiment.uuid}/")
    experiment.refresh_from_db()
    assert experiment.params == {"delay": {"latency": "250ms"}} and experiment.duration == "2m0s"
    assert experiment.selector["namespaces"] == ["shop", "web"]


def test_a_bad_value_on_edit_is_shown_on_its_field_and_changes_nothing(world: Any) -> None:
    experiment = network_delay(world)
    response = signed_in(world.operator).post(url(f"{experiment.uuid}/edit/"), delay_form(duration="soon"))
    assert response.status_code == 400
    assert "is not a duration" in field_html(text(response), "duration")
    experiment.refresh_from_db()
    assert experiment.duration == "30s"


def test_a_viewer_cannot_edit(world: Any) -> None:
    experiment = network_delay(world)
    client = signed_in(world.viewer)
    assert client.get(url(f"{experiment.uuid}/edit/")).status_code == 403
    assert client.post(url(f"{experiment.uuid}/edit/"), delay_form(duration="5m")).status_code == 403
    experiment.refresh_from_db()
    assert experiment.duration == "30s"


# Delete ----------------------------------------------------------------------------------------------


def test_an_operator_deletes_an_experiment_after_confirming(world: Any, lab: Any) -> None:
    _, cpu = lab
    client = signed_in(world.operator)
    confirm = text(client.get(url(f"{cpu.uuid}/delete/")))
    assert "Yes, delete cpu" in confirm

    response = client.post(url(f"{cpu.uuid}/delete/"), follow=True)

    assert response.redirect_chain[-1][0] == url()
    assert "Deleted experiment cpu" in text(response)
    assert not Experiment.objects.filter(pk=cpu.pk).exists()


def test_an_experiment_a_schedule_runs_cannot_be_deleted(world: Any, lab: Any) -> None:
    _, cpu = lab
    services.save_schedule(SYSTEM, world.acme, {"name": "nightly", "cron": "0 3 * * *", "experiment": "cpu",
                                                "environment": "lab"})
    client = signed_in(world.operator)
    assert "Yes, delete" not in text(client.get(url(f"{cpu.uuid}/delete/")))

    response = client.post(url(f"{cpu.uuid}/delete/"), follow=True)

    assert response.redirect_chain[-1][0] == url(f"{cpu.uuid}/")
    assert "the schedules nightly run this experiment; delete them first" in text(response)
    assert Experiment.objects.filter(pk=cpu.pk).exists() and Schedule.objects.exists()


def test_a_viewer_cannot_delete(world: Any, lab: Any) -> None:
    _, cpu = lab
    client = signed_in(world.viewer)
    assert client.get(url(f"{cpu.uuid}/delete/")).status_code == 403
    assert client.post(url(f"{cpu.uuid}/delete/")).status_code == 403
    assert Experiment.objects.filter(pk=cpu.pk).exists()


# The live previews: targets and manifest -------------------------------------------------------------


@pytest.mark.parametrize("member", MEMBERS)
def test_the_preview_lists_the_agents_the_selector_picks(world: Any, lab: Any, member: str) -> None:
    response = signed_in(getattr(world, member)).post(url("preview/"), host_form(environment="lab"))

    assert response.status_code == 200
    assert response.json() == {"environment": "lab", "candidates": 2, "selected": 2, "more": 0, "random": False,
                               "targets": ["host-0 (host-0.lab)", "host-2 (host-2.lab)"]}


def test_the_preview_picks_with_a_fixed_seed_for_random_modes(world: Any, lab: Any) -> None:
    client = signed_in(world.operator)
    form = host_form(environment="lab", mode="fixed", value="1", **{"selector.labelSelectors:key": [""],
                                                                     "selector.labelSelectors:value": [""]})
    first, second = client.post(url("preview/"), form).json(), client.post(url("preview/"), form).json()
    assert first == second and first["selected"] == 1 and first["candidates"] == 3 and first["random"] is True


def test_the_preview_takes_the_apis_json_too(world: Any, lab: Any) -> None:
    body = {"environment": "lab", "kind": "PhysicalMachineChaos", "action": "stress-cpu",
            "params": {"stress-cpu": {"load": 10, "workers": 1}}, "selector": {"agents": ["host-1"]}, "mode": "all"}
    response = signed_in(world.viewer).post(url("preview/"), json.dumps(body), content_type="application/json")
    assert response.json()["targets"] == ["host-1 (host-1.lab)"]


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"environment": ""}, "environment"),
        ({"environment": "nope"}, "environment"),
        ({"selector.namespaces": "Not_A_Namespace"}, "selector.namespaces"),
        ({"params.stress-cpu.load": "lots"}, "params.stress-cpu.load"),
        ({"kind": "NetworkChaos", "action": "delay", "params.delay.latency": "1s"}, "environment"),
    ],
    ids=["no-environment", "unknown-environment", "bad-namespace", "bad-load", "pods-kind-in-hosts"],
)
def test_the_preview_names_the_bad_field(world: Any, lab: Any, overrides: dict[str, str], field: str) -> None:
    response = signed_in(world.operator).post(url("preview/"), {**host_form(environment="lab"), **overrides})
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_yaml_endpoint_gives_the_manifest_of_the_form(world: Any) -> None:
    response = signed_in(world.viewer).post(url("yaml/"), delay_form())

    assert response.status_code == 200
    (definition,) = manifests.parse(response.json()["yaml"])
    assert definition.kind.name == "NetworkChaos" and definition.meta.name == "slow-cart"
    assert definition.spec()["delay"] == {"latency": "100ms"} and definition.meta.description.startswith("Is the")


def test_the_yaml_endpoint_names_the_fields_to_fix(world: Any) -> None:
    response = signed_in(world.operator).post(url("yaml/"), delay_form(**{"params.delay.latency": "fast",
                                                                         "name": ""}))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["params.delay.latency"] and "is not a duration" in errors["params.delay.latency"][0]


def test_the_form_page_shows_the_manifest_of_what_it_holds(world: Any) -> None:
    experiment = network_delay(world)
    page = text(signed_in(world.operator).get(url(f"{experiment.uuid}/edit/")))
    assert "kind: NetworkChaos" in page and "latency: 100ms" in page


# Importing a pasted manifest --------------------------------------------------------------------------

MANIFEST = """\
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: pasted-delay, namespace: shop}
spec:
  action: delay
  mode: one
  selector: {labelSelectors: {app: cart}}
  delay: {latency: 50ms}
  duration: 1m
---
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: pasted-kill}
spec: {action: pod-kill, mode: one, selector: {namespaces: [shop]}}
"""


def test_an_operator_imports_a_pasted_manifest(world: Any) -> None:
    response = signed_in(world.operator).post(url("import/"), {"manifest": MANIFEST}, follow=True)

    assert response.redirect_chain[-1][0] == url()
    assert set(Experiment.objects.values_list("name", flat=True)) == {"pasted-delay", "pasted-kill"}
    page = text(response)
    assert "Created experiment pasted-delay from document 1" in page and "document 2" in page


def test_importing_one_experiment_lands_on_its_page(world: Any) -> None:
    one = MANIFEST.split("---")[0]
    response = signed_in(world.owner).post(url("import/"), {"manifest": one})
    experiment = Experiment.objects.get(name="pasted-delay")
    assert response["Location"] == url(f"{experiment.uuid}/")


def test_a_bad_manifest_lists_every_error_with_its_document_and_path_and_imports_nothing(world: Any) -> None:
    bad = MANIFEST.replace("latency: 50ms", "latency: fast").replace("pod-kill", "pod-explode")

    response = signed_in(world.operator).post(url("import/"), {"manifest": bad})

    assert response.status_code == 400
    page = text(response)
    rows = re.findall(r"<tr><td>(\d+)</td><td><code>([^<]+)</code></td><td>([^<]+)</td></tr>", page)
    assert ("1", "spec.delay.latency") in [(d, p) for d, p, _ in rows]
    assert ("2", "spec.action") in [(d, p) for d, p, _ in rows]
    assert "Nothing was imported" in page and "pasted-delay" in page  # the text is kept to fix
    assert not Experiment.objects.exists()


def test_a_bad_manifest_pasted_in_the_yaml_tab_comes_back_in_that_tab(world: Any) -> None:
    response = signed_in(world.operator).post(url("import/"), {"manifest": "kind: [", "back_kind": "PodChaos",
                                                               "back_action": "pod-kill"})
    assert response.status_code == 400
    page = text(response)
    assert 'data-tab="yaml"' in page and 'name="params.gracePeriod"' in page
    assert "not valid YAML" in page and "the whole text" in page


def test_a_viewer_cannot_import(world: Any) -> None:
    assert signed_in(world.viewer).post(url("import/"), {"manifest": MANIFEST}).status_code == 403
    assert not Experiment.objects.exists()


def test_the_edit_form_round_trips_an_experiment_unchanged(world: Any) -> None:
    experiment = network_delay(world, description="x", status_checks=[{
        "name": "up", "abort": False,
        "spec": {"type": "HTTP", "http": {"url": "http://shop/", "criteria": {"statusCode": "200"}}}}])
    form = ExperimentForm(StoredValues(api_fields(experiment)), experiment.kind, experiment.action)
    data = form.data()
    before = services.snapshot(experiment)

    services.update_experiment(SYSTEM, experiment, data)

    experiment.refresh_from_db()
    assert services.snapshot(experiment) == before
