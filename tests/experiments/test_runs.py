"""The run lifecycle (experiments.runs) step by step, with the real database, the real relay in Redis and
simulated agents behind it (devtools.simagents): selection with a recorded seed, the policy at both
checks, dry runs, pause and resume, stop, halt, the reaper, transient and permanent agent errors.
Tasks are not published here (no on_commit in these transactions); the steps are called directly.
The same lifecycle with a real Celery worker, gateway and agent: test_runs_e2e.py."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from guardian.shortcuts import assign_perm

from experiments import runs
from experiments import services as experiment_services
from experiments.models import Event, Injection, Run
from injector.models import Agent
from tenants.actors import Actor
from tenants.models import AuditEntry, Policy

from .runs_harness import SYSTEM, host_experiment, hosts_environment, simulated

pytestmark = pytest.mark.django_db

Phase, State = Run.Phase, Injection.State


@pytest.fixture
def redis_url(settings: Any) -> str:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    settings.RUN_RETRY_BASE_SECONDS = 0.01
    return settings.REDIS_URL


def reasons(run: Run) -> list[str]:
    return list(Event.objects.filter(run=run).order_by("created_at", "id").values_list("reason", flat=True))


def fresh(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


def test_a_run_injects_every_selected_agent_and_a_stop_recovers_them(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=3)
    experiment = host_experiment(world.acme, selector={"labelSelectors": {"tier": "web"}})
    with simulated(env, redis_url) as sim:
        run = runs.start_run(Actor(user=world.operator.user), experiment, "lab")
        assert run.phase == Phase.PENDING and run.deadline > timezone.now() + timedelta(seconds=55)

        assert runs.inject(run.pk) == runs.DONE

        run = fresh(run)
        assert run.phase == Phase.RUNNING and run.candidates == 2
        rows = list(run.injections.all())
        assert sorted(r.target_display for r in rows) == ["host-0 (host-0.lab)", "host-2 (host-2.lab)"]
        assert {r.state for r in rows} == {State.INJECTED} and all(r.injected_at for r in rows)
        held = sim.all_held()
        assert sorted(held.values(), key=sorted) == sorted(({r.fault_id} for r in rows), key=sorted)

        assert runs.stop(Actor(user=world.operator.user), run)
        assert runs.recover(run.pk) == runs.DONE
        assert sim.all_held() == {}
    run = fresh(run)
    assert run.phase == Phase.FINISHED and run.archived and run.finished_at
    assert {r.state for r in run.injections.all()} == {State.RECOVERED}
    assert reasons(run) == ["Started", "Selected", "Injected", "Running", "Stopped", "Recovered", "Finished"]
    assert AuditEntry.objects.filter(tenant=world.acme, action__in=["run.start", "run.stop"]).count() == 2


def test_the_recorded_seed_picks_the_same_agents_again(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=8)
    experiment = host_experiment(world.acme, mode="fixed", value="3")
    with simulated(env, redis_url):
        first = runs.start_run(SYSTEM, experiment, "lab")
        runs.inject(first.pk)
        second = runs.start_run(SYSTEM, experiment, "lab")
        Run.objects.filter(pk=second.pk).update(seed=first.seed)
        runs.inject(second.pk)
    picked = [sorted(fresh(r).injections.values_list("target_key", flat=True)) for r in (first, second)]
    assert len(picked[0]) == 3 and picked[0] == picked[1]


def test_a_dry_run_records_the_targets_and_touches_nothing(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    experiment = host_experiment(world.acme)
    with simulated(env, redis_url) as sim:
        run = runs.start_run(SYSTEM, experiment, "lab", dry_run=True)
        runs.inject(run.pk)
        assert sim.commands == []
    run = fresh(run)
    assert run.phase == Phase.FINISHED and run.dry_run
    rows = list(run.injections.all())
    assert len(rows) == 2 and {r.state for r in rows} == {State.DRY_RUN}
    assert all(r.detail.startswith("would inject PhysicalMachineChaos stress-cpu on host-") for r in rows)
    assert "DryRun" in reasons(run)


def test_pause_recovers_and_resume_injects_the_same_targets_again(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    experiment = host_experiment(world.acme)
    actor = Actor(user=world.operator.user)
    with simulated(env, redis_url) as sim:
        run = runs.start_run(actor, experiment, "lab")
        runs.inject(run.pk)
        runs.pause(actor, fresh(run))
        assert fresh(run).phase == Phase.PAUSING
        runs.recover(run.pk)
        assert fresh(run).phase == Phase.PAUSED and sim.all_held() == {}
        with pytest.raises(ValidationError, match="only a running run can be paused"):
            runs.pause(actor, fresh(run))

        runs.resume(actor, fresh(run))
        runs.inject(run.pk)
        run = fresh(run)
        assert run.phase == Phase.RUNNING
        second = list(run.injections.filter(round=2))
        assert len(second) == 2 and {r.state for r in second} == {State.INJECTED}
        first = set(run.injections.filter(round=1).values_list("target_key", flat=True))
        assert {r.target_key for r in second} == first
        assert sorted(f for held in sim.all_held().values() for f in held) == sorted(r.fault_id for r in second)
        runs.stop(actor, run)
        runs.recover(run.pk)
        assert sim.all_held() == {}
    assert [r for r in reasons(run) if r in ("Pausing", "Paused", "Resumed")] == ["Pausing", "Paused", "Resumed"]


def test_a_stop_while_injecting_leaves_nothing_behind(world: Any, redis_url: str) -> None:
    """The stop lands between selection and injection: no target starts, nothing is held."""
    env = hosts_environment(world.acme, agents=2)
    with simulated(env, redis_url) as sim:
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
        Run.objects.filter(pk=run.pk).update(phase=Phase.INJECTING)
        from injector.environments import driver_for

        runs._select(fresh(run), runs.run_definition(run), driver_for(run.environment))
        runs.stop(SYSTEM, fresh(run))
        assert runs.inject(run.pk) == runs.DONE
        runs.recover(run.pk)
        assert sim.commands == [] and sim.all_held() == {}
    assert fresh(run).phase == Phase.FINISHED  # stopped before any target was tried: not a failure
    assert {r.state for r in fresh(run).injections.all()} == {State.SKIPPED}


def test_an_agent_that_refuses_fails_its_target_and_the_run_goes_on(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    refusing = Agent.objects.get(environment=env, name="host-1")
    with simulated(env, redis_url) as sim:
        sim.refuse[str(refusing.uuid)] = "stress-ng is not installed"
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
        runs.inject(run.pk)
        run = fresh(run)
        assert run.phase == Phase.RUNNING
        failed = run.injections.get(state=State.FAILED)
        assert "host-1" in failed.target_display and "stress-ng is not installed" in failed.error
        assert Event.objects.filter(run=run, reason="Failed", message__contains="stress-ng").exists()

        sim.refuse[str(Agent.objects.get(environment=env, name="host-0").uuid)] = "no"
        everyone = runs.start_run(SYSTEM, host_experiment(world.acme, "cpu-2"), "lab")
        runs.inject(everyone.pk)
    assert fresh(everyone).phase == Phase.FAILED and fresh(everyone).message == "no target took the fault"


def test_a_silent_agent_is_retried_then_given_up(world: Any, redis_url: str, settings: Any) -> None:
    settings.AGENT_COMMAND_TIMEOUT = 0.2
    settings.RUN_MAX_ATTEMPTS = 2
    env = hosts_environment(world.acme, agents=1)
    with simulated(env, redis_url) as sim:
        sim.silent.add(str(Agent.objects.get(environment=env).uuid))
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
        step = runs.inject(run.pk)
        assert step.retry_in is not None and "did not answer" in step.message
        assert fresh(run).injections.get().state == State.PENDING
        assert runs.inject(run.pk) == runs.DONE  # the second attempt is the last
    run = fresh(run)
    assert run.phase == Phase.FAILED and run.injections.get().state == State.FAILED
    assert "Retrying" in reasons(run)


def test_halt_recovers_every_active_run_of_the_tenant_at_once(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=3)
    with simulated(env, redis_url) as sim:
        started = [runs.start_run(SYSTEM, host_experiment(world.acme, f"cpu-{i}"), "lab") for i in range(3)]
        for run in started[:2]:
            runs.inject(run.pk)
        assert len([f for held in sim.all_held().values() for f in held]) == 6

        summary = runs.halt(Actor(user=world.operator.user), world.acme)

        assert summary == {"halted": 3, "recovered": 3, "still_recovering": 0}
        assert sim.all_held() == {}
    for run in started:
        assert fresh(run).phase in (Phase.FINISHED, Phase.FAILED) and "Halted" in reasons(run)
    with pytest.raises(PermissionDenied):
        runs.halt(Actor(user=world.viewer.user), world.acme)


def test_the_reaper_stops_runs_past_their_deadline_and_forgets_silent_agents(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=2)
    with simulated(env, redis_url) as sim:
        run = runs.start_run(SYSTEM, host_experiment(world.acme, duration="30s"), "lab")
        runs.inject(run.pk)
        assert runs.reap()["expired"] == 0
        Run.objects.filter(pk=run.pk).update(deadline=timezone.now() - timedelta(seconds=1))
        Agent.objects.filter(environment=env, name="host-1").update(
            last_heartbeat=timezone.now() - timedelta(minutes=5)
        )

        assert runs.reap() == {"expired": 1, "recovering": 0, "injecting": 0, "agents": 1, "checks": 0, "workflows": 0}

        assert fresh(run).phase == Phase.RECOVERING
        runs.recover(run.pk)  # what the published recover task does
        assert sim.all_held() == {}
    assert fresh(run).phase == Phase.FINISHED and "Deadline" in reasons(run)
    assert not Agent.objects.get(environment=env, name="host-1").connected


def test_every_run_has_a_deadline(world: Any, settings: Any) -> None:
    settings.RUN_MAX_SECONDS = 3600
    hosts_environment(world.acme, agents=1)
    forever = runs.start_run(SYSTEM, host_experiment(world.acme, duration=""), "lab")
    assert forever.duration_seconds is None
    assert timedelta(minutes=59) < forever.deadline - forever.created_at <= timedelta(hours=1)
    Policy.objects.filter(tenant=world.acme).update(max_duration_seconds=600)
    capped = runs.start_run(SYSTEM, host_experiment(world.acme, "cpu-2", duration="5m"), "lab")
    assert abs(capped.deadline - capped.created_at - timedelta(minutes=5)) < timedelta(seconds=1)


def test_deleting_an_experiment_stops_its_runs_and_keeps_them_archived(world: Any, redis_url: str) -> None:
    env = hosts_environment(world.acme, agents=1)
    experiment = host_experiment(world.acme)
    with simulated(env, redis_url) as sim:
        run = runs.start_run(SYSTEM, experiment, "lab")
        runs.inject(run.pk)
        experiment_services.delete_experiment(Actor(user=world.operator.user), experiment)
        runs.recover(run.pk)
        assert sim.all_held() == {}
    run = fresh(run)
    assert run.experiment is None and run.experiment_name == "cpu" and run.phase == Phase.FINISHED
    assert "was deleted" in run.message and run.spec["spec"]["action"] == "stress-cpu"


def test_archived_runs_refuse_commands(world: Any, redis_url: str) -> None:
    hosts_environment(world.acme, agents=1)
    run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab", dry_run=True)
    runs.inject(run.pk)
    for command in (runs.stop, runs.pause, runs.resume):
        with pytest.raises(ValidationError, match="archived runs are read-only"):
            command(SYSTEM, fresh(run))


# Environments and grants ---------------------------------------------------------------------------


def test_an_operator_needs_a_grant_on_a_gated_environment(world: Any) -> None:
    env = hosts_environment(world.acme, "prod", agents=1)
    env.requires_grant = True
    env.save()
    experiment = host_experiment(world.acme)
    with pytest.raises(PermissionDenied, match="needs a grant"):
        runs.start_run(Actor(user=world.operator.user), experiment, "prod")
    assert runs.start_run(Actor(user=world.owner.user), experiment, "prod").phase == Phase.PENDING
    assign_perm("run_environment", world.operator.user, env)
    assert runs.start_run(Actor(user=world.operator.user), experiment, "prod").phase == Phase.PENDING
    with pytest.raises(PermissionDenied):
        runs.start_run(Actor(user=world.viewer.user), experiment, "prod")


def test_an_unknown_or_unfit_environment_names_the_field(world: Any) -> None:
    experiment = host_experiment(world.acme)
    with pytest.raises(ValidationError) as unknown:
        runs.start_run(SYSTEM, experiment, "nowhere")
    assert "no environment named 'nowhere'" in str(unknown.value.message_dict["environment"])
    from injector import services

    services.create_environment(
        SYSTEM, world.acme, "cloud", "aws", config={"region": "us-east-1"},
        secrets={"access_key_id": "AKIAEXAMPLE", "secret_access_key": "not-a-real-secret"},
    )
    with pytest.raises(ValidationError) as unfit:
        runs.start_run(SYSTEM, experiment, "cloud")
    assert "runs in a Hosts (node agent) environment" in str(unfit.value.message_dict["environment"])
    assert not Run.objects.exists()


# Policy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "experiment", "rule"),
    [
        ({"max_duration_seconds": 30}, {"duration": "60s"}, "max-duration"),
        ({"max_concurrent_runs": 0}, {}, "max-concurrent-runs"),
        ({"allowed_windows": [{"days": [], "start": "00:00", "end": "00:01"}]}, {}, "time-window"),
    ],
)
def test_a_refusal_before_selection_names_its_rule(world: Any, policy: dict, experiment: dict, rule: str) -> None:
    hosts_environment(world.acme, agents=1)
    Policy.objects.filter(tenant=world.acme).update(**policy)
    run = runs.start_run(SYSTEM, host_experiment(world.acme, **experiment), "lab")
    assert run.phase == Phase.REFUSED and f"policy {rule}:" in run.message and run.archived
    assert reasons(run) == ["Started", "PolicyRefused"]


@pytest.mark.parametrize(
    ("policy", "rule"), [({"max_targets": 2}, "max-targets"), ({"max_target_percent": 50}, "max-target-percent")]
)
def test_a_refusal_after_selection_names_its_rule_and_injects_nothing(
    world: Any, redis_url: str, policy: dict, rule: str
) -> None:
    env = hosts_environment(world.acme, agents=3)
    Policy.objects.filter(tenant=world.acme).update(**policy)
    with simulated(env, redis_url) as sim:
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
        runs.inject(run.pk)
        assert sim.commands == []
    run = fresh(run)
    assert run.phase == Phase.REFUSED and f"policy {rule}:" in run.message
    assert not run.injections.exists()
