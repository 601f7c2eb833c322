"""The run lifecycle: start, inject, recover, pause, resume, stop, halt and the reaper's sweep.

The database holds the state; every phase change is a compare-and-set, so a redelivered task, a
second worker, the reaper and a halt may race on one run and each change happens once:

- start_run (a request, a schedule, a manifest) checks the policy, writes Run(pending) and its audit
  entry, and publishes inject_run and the deadline's expire_run once the transaction commits;
- inject: pending -> injecting; resolve the candidates and select with the recorded seed (first
  round only), check the policy again on the targets, then inject each pending Injection; a target
  moves pending -> injecting -> injected under the run's row lock, so once a stop has moved the run
  to recovering no further target starts, and a target that finished injecting after recovery took
  it is recovered again by the injector itself (recovery is idempotent);
- recover: pausing|recovering -> every live injection recovered -> paused|finished (or failed when no
  target ever took the fault);
- a run past its deadline is stopped by its eta task or, whatever happened to that, by the reaper.

Transient driver errors (timeouts, 5xx, a relay down) leave the target pending (or recovering) and
ask the caller, a Celery task, to retry with backoff; permanent errors end the target with the
message. Functions here take ids or rows and return plain values; tasks live in experiments.tasks.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from injector import manifests
from injector.drivers.base import DriverError, TargetRef, TransientError
from injector.environments import compatibility_error, driver_for
from injector.faults import KINDS, SelectorKind
from injector.manifests import ExperimentDefinition, Meta
from injector.models import Environment
from injector.selection import select
from tenants import audit
from tenants.actors import Actor
from tenants.models import Policy, Tenant
from tenants.roles import Role, at_least

from . import checking
from . import policy as blast
from .models import CheckRun, Event, Experiment, Injection, Run

log = logging.getLogger(__name__)
Phase, State = Run.Phase, Injection.State

#: Rows per UPDATE when a step writes the outcome of many targets.
BATCH = 500

#: Phases a stop (or halt, or the deadline) moves to recovering.
STOPPABLE = (Phase.PENDING, Phase.INJECTING, Phase.RUNNING, Phase.PAUSING, Phase.PAUSED)


@dataclass(frozen=True)
class Step:
    """What a task should do next: nothing (done), or try again after `retry_in` seconds."""

    retry_in: float | None = None
    message: str = ""


DONE = Step()


# Starting -----------------------------------------------------------------------------------------


def _require(actor: Actor, tenant: Tenant, role: str = Role.OPERATOR) -> None:
    if not actor.is_system and not at_least(actor.role_in(tenant), role):
        raise PermissionDenied(f"this needs the {role} role in {tenant.slug}")


def runnable_environment(actor: Actor, tenant: Tenant, name: Any) -> Environment:
    """The environment `name` of `tenant` if `actor` may run against it (owners always; operators
    unless it requires a grant they lack); otherwise a ValidationError or PermissionDenied."""
    if not isinstance(name, str) or not name:
        raise ValidationError({"environment": "is required: the name of an environment of this tenant"})
    env = Environment.objects.restrict(actor, "run").filter(tenant=tenant, name=name).first()
    if env is not None:
        return env
    if Environment.objects.filter(tenant=tenant, name=name).exists():
        raise PermissionDenied(f"running against environment {name} needs a grant from an owner of {tenant.slug}")
    raise ValidationError({"environment": f"{tenant.slug} has no environment named {name!r}"})


def run_definition(run: Run) -> ExperimentDefinition:
    snap = run.spec
    meta = Meta(snap["name"], snap.get("namespace") or None, dict(snap.get("labels") or {}))
    return manifests.parse_chaos(KINDS[run.kind], meta, snap["spec"], "spec")


def _deadline(now: datetime, definition: ExperimentDefinition, policy: Policy) -> tuple[float | None, datetime]:
    """(duration in seconds or None, deadline). A run without a duration lasts until stopped, but
    never past RUN_MAX_SECONDS (or the policy's maximum): every run has a deadline."""
    if definition.fault.action.one_shot:
        return None, now + timedelta(seconds=settings.RUN_ONE_SHOT_SECONDS)
    if definition.duration is not None:
        seconds = definition.duration.nanoseconds / 1e9
        return seconds, now + timedelta(seconds=seconds)
    cap = min(x for x in (settings.RUN_MAX_SECONDS, policy.max_duration_seconds) if x is not None)
    return None, now + timedelta(seconds=cap)


def _selector_namespaces(definition: ExperimentDefinition) -> list[str]:
    """Namespaces the selector names outright (or, naming none, the experiment's own)."""
    if definition.kind.selector != SelectorKind.PODS:
        return []
    selector = definition.selector or {}
    named = list(selector.get("namespaces") or ()) + list((selector.get("pods") or {}).keys())
    if not named and definition.meta.namespace:
        named = [definition.meta.namespace]
    return named


class PolicyRefusal(Exception):
    """A start the policy refused, raised (not recorded as a run) when the caller asked for that:
    a schedule's tick records it as an event on the schedule instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def start_run(
    actor: Actor, experiment: Experiment, environment: str | Environment, *, dry_run: bool | None = None,
    publish: bool = True, origin: str = Run.Origin.API, schedule: Any = None, record_refusal: bool = True,
) -> Run:
    """Start `experiment` against the tenant's environment named `environment`. A run refused by the
    policy is recorded (phase refused, its message naming each rule) and returned, not raised (unless
    `record_refusal` is off: then PolicyRefusal is raised and nothing is written)."""
    from .services import experiment_definition, snapshot

    _require(actor, experiment.tenant)
    return launch(
        actor, experiment.tenant, experiment_definition(experiment), snapshot(experiment), environment,
        experiment=experiment, dry_run=dry_run, publish=publish, origin=origin, schedule=schedule,
        record_refusal=record_refusal,
    )


def launch(
    actor: Actor, tenant: Tenant, definition: ExperimentDefinition, snap: dict[str, Any],
    environment: str | Environment, *, experiment: Experiment | None = None, dry_run: bool | None = None,
    publish: bool = True, origin: str = Run.Origin.API, schedule: Any = None, workflow_node: Any = None,
    max_seconds: float | None = None, record_refusal: bool = True,
) -> Run:
    """Start a run of `definition` (an experiment's, or a workflow node's inline chaos; `snap` is what
    the run keeps of it). `max_seconds` caps its duration (a workflow node's deadline)."""
    _require(actor, tenant)
    env = environment if isinstance(environment, Environment) else runnable_environment(actor, tenant, environment)
    problem = compatibility_error(env, definition.kind)
    if problem:
        raise ValidationError({"environment": problem})
    with transaction.atomic():
        # One start at a time per tenant, so max-concurrent-runs counts every run that is starting.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        policy, _ = Policy.objects.get_or_create(tenant=tenant)
        dry = policy.dry_run_by_default if dry_run is None else bool(dry_run)
        now = timezone.now()
        duration, deadline = _deadline(now, definition, policy)
        if max_seconds is not None and not definition.fault.action.one_shot:
            cap = max(max_seconds, 1.0)
            if duration is None or duration > cap:
                duration, deadline = cap, now + timedelta(seconds=cap)
        refusals = [] if dry else blast.check_run(
            policy,
            duration_seconds=duration,
            one_shot=definition.fault.action.one_shot,
            selector_namespaces=_selector_namespaces(definition),
            now=now,
            active_runs=Run.objects.filter(tenant=tenant, phase__in=Run.ACTIVE, dry_run=False).count(),
        )
        if refusals and not record_refusal:
            raise PolicyRefusal(_refusal_text(refusals))
        run = Run.objects.create(
            tenant=tenant,
            experiment=experiment,
            experiment_name=snap["name"],
            environment=env,
            environment_name=env.name,
            spec=snap,
            kind=definition.kind.name,
            action=definition.fault.action.name,
            dry_run=dry,
            one_shot=definition.fault.action.one_shot,
            phase=Phase.REFUSED if refusals else Phase.PENDING,
            message=_refusal_text(refusals),
            seed=random.SystemRandom().randrange(2**62),
            duration_seconds=duration,
            deadline=deadline,
            created_by=actor.user if actor.user is not None and actor.user.is_authenticated else None,
            finished_at=now if refusals else None,
            origin=origin,
            schedule=schedule,
            workflow_node=workflow_node,
        )
        what = "dry run" if dry else "run"
        how = {Run.Origin.SCHEDULE: f"by schedule {getattr(schedule, 'name', '')}",
               Run.Origin.WORKFLOW: f"by workflow node {getattr(workflow_node, 'path', '')}"}.get(origin)
        who = f"{how} ({actor})" if how else f"by {actor}"
        event(run, "Started", f"{what} of {snap['name']} against {env.name} started {who}")
        if refusals:
            event(run, "PolicyRefused", run.message, warning=True)
        audit.record(
            actor, tenant, "run.start", run, object_id=run.uuid,
            after={"experiment": snap["name"], "environment": env.name, "dry_run": dry, "phase": run.phase,
                   "origin": origin},
        )
        if publish and not refusals:
            run_id = run.pk
            transaction.on_commit(lambda: _publish_start(run_id, deadline))
        elif refusals:
            _ended(run.pk)
    return run


def _publish_start(run_id: int, deadline: datetime) -> None:
    from . import tasks

    tasks.inject_run.delay(run_id)
    tasks.expire_run.apply_async((run_id,), eta=deadline)


def _ended(run_id: int) -> None:
    """The run has just ended: its checks, its steady-state verdict and its workflow node follow up."""
    from . import tasks

    transaction.on_commit(lambda: tasks.run_ended.delay(run_id))


def _refusal_text(refusals: Iterable[blast.Refusal]) -> str:
    return "; ".join(f"policy {r.rule}: {r.message}" for r in refusals)


def event(run: Run, reason: str, message: str, *, warning: bool = False) -> Event:
    return Event.objects.create(
        tenant_id=run.tenant_id, run=run, reason=reason, message=message[:4000],
        type=Event.Type.WARNING if warning else Event.Type.NORMAL, object_type="run", object_id=str(run.uuid),
    )


# Injecting ----------------------------------------------------------------------------------------


def _cas(run_id: int, from_phases: Iterable[str], to: str, **fields: Any) -> bool:
    """Move the run from any of `from_phases` to `to`; True for exactly one caller."""
    return bool(Run.objects.filter(pk=run_id, phase__in=list(from_phases)).update(phase=to, **fields))


def _target_ref(injection: Injection) -> TargetRef:
    return TargetRef(**injection.target)


def _parallel(fn: Callable[[Injection], Any], rows: list[Injection]) -> list[tuple[Injection, Any]]:
    """fn(row) for each row in a thread pool; each result is a value or the DriverError raised."""

    def call(row: Injection) -> tuple[Injection, Any]:
        try:
            return row, fn(row)
        except DriverError as error:
            return row, error
        except Exception as error:  # noqa: BLE001 - a driver bug must not leave the others unvisited
            log.exception("driver failed on %s", row.target_key)
            return row, DriverError(f"internal error: {error.__class__.__name__}: {error}")

    if len(rows) <= 1:
        return [call(r) for r in rows]
    with ThreadPoolExecutor(max_workers=min(settings.RUN_PARALLELISM, len(rows))) as pool:
        return list(pool.map(call, rows))


def inject(run_id: int) -> Step:
    """Resolve, select and inject (a new run, or a resumed one). Safe to call again at any time."""
    _cas(run_id, [Phase.PENDING], Phase.INJECTING, started_at=timezone.now())  # a new run; else resumed or redone
    run = Run.objects.select_related("environment", "tenant").get(pk=run_id)
    if run.phase != Phase.INJECTING:
        return DONE
    if run.environment is None:
        return _fail(run, "its environment was deleted")
    definition = run_definition(run)
    driver = None
    try:
        driver = driver_for(run.environment)
        if not run.injections.exists():
            if not run.dry_run and run.spec.get("status_checks") and not run.checks.exists():
                refusal = checking.before(run)
                if refusal is not None:
                    if _cas(run.pk, [Phase.INJECTING], Phase.REFUSED, message=refusal, finished_at=timezone.now()):
                        event(run, "SteadyStateFailed", refusal, warning=True)
                        _ended(run.pk)
                    return DONE
            step = _select(run, definition, driver)
            if step is not None:
                return step
        if run.dry_run:
            return _finish_dry_run(run, definition)
        return _inject_pending(run, definition, driver)
    except TransientError as error:
        return Step(retry_in=_backoff(run), message=str(error))
    except DriverError as error:
        return _fail(run, str(error))
    finally:
        if driver is not None:
            driver.close()


def _select(run: Run, definition: ExperimentDefinition, driver: Any) -> Step | None:
    candidates = driver.candidates(definition.selector, definition.meta.namespace or "", definition.fault)
    # Cloud kinds name their one resource in the spec: no mode, the candidates are the targets.
    chosen = select(candidates, definition.mode, run.seed) if definition.mode is not None else list(candidates)
    Run.objects.filter(pk=run.pk).update(candidates=len(candidates))
    if not chosen:
        return _fail(run, f"the selector matched no target ({len(candidates)} candidates)")
    if not run.dry_run:
        refusals = blast.check_targets(run.tenant.policy, chosen, len(candidates))
        if refusals:
            text = _refusal_text(refusals)
            if _cas(run.pk, [Phase.INJECTING], Phase.REFUSED, message=text, finished_at=timezone.now()):
                event(run, "PolicyRefused", text, warning=True)
                _ended(run.pk)
            return DONE
    prefix = f"cp-{run.uuid.hex[:12]}"
    rows = [
        Injection(
            run=run, round=1, fault_id=f"{prefix}-1-{i}", target_key=t.key[:512], target_display=t.display[:512],
            target_namespace=t.namespace, target=asdict(t),
        )
        for i, t in enumerate(chosen)
    ]
    names = ", ".join(t.display for t in chosen[:10]) + (f" and {len(chosen) - 10} more" if len(chosen) > 10 else "")
    try:
        with transaction.atomic():
            Injection.objects.bulk_create(rows, batch_size=500)
            event(run, "Selected", f"{len(chosen)} of {len(candidates)} candidates ({_mode_text(definition)}, "
                                   f"seed {run.seed}): {names}")
    except IntegrityError:
        return None  # another worker selected first; go on with its rows
    return None


def _mode_text(definition: ExperimentDefinition) -> str:
    if definition.mode is None:
        return "the resource the spec names"
    return f"mode {definition.mode.mode}" + (f" {definition.mode.value}" if definition.mode.value is not None else "")


def _finish_dry_run(run: Run, definition: ExperimentDefinition) -> Step:
    what = f"{definition.kind.name} {definition.fault.action.name}"
    run.injections.filter(state=State.PENDING).update(state=State.DRY_RUN)
    for row in run.injections.all():
        Injection.objects.filter(pk=row.pk).update(detail=f"would inject {what} on {row.target_display}")
    if _cas(run.pk, [Phase.INJECTING], Phase.FINISHED, finished_at=timezone.now(), message="dry run: nothing injected"):
        event(run, "DryRun", f"would inject {what} on {run.injections.count()} targets; nothing was touched")
        _ended(run.pk)
    return DONE


def _inject_pending(run: Run, definition: ExperimentDefinition, driver: Any) -> Step:
    fault = definition.fault
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.phase != Phase.INJECTING:
            return DONE
        rows = list(locked.injections.filter(state=State.PENDING))
        locked.injections.filter(state=State.PENDING).update(state=State.INJECTING)  # the same rows: run locked
    expires_at = run.deadline

    results = _parallel(lambda row: driver.inject(_target_ref(row), fault, row.fault_id, expires_at), rows)

    transient: list[str] = []
    failed: list[str] = []
    retake: list[Injection] = []
    changed: list[Injection] = []
    now = timezone.now()
    with transaction.atomic():
        Run.objects.select_for_update().filter(pk=run.pk).first()
        current = dict(run.injections.values_list("pk", "state"))
        for row, outcome in results:
            mine = current.get(row.pk) == State.INJECTING
            row.attempts += 1
            if isinstance(outcome, TransientError):
                transient.append(f"{row.target_display}: {outcome}")
                row.state, row.error = State.PENDING, str(outcome)
            elif isinstance(outcome, DriverError):
                failed.append(f"{row.target_display}: {outcome}")
                row.state, row.error = State.FAILED, str(outcome)
            elif mine:
                row.state, row.detail, row.injected_at, row.error = State.INJECTED, str(outcome or ""), now, ""
            else:
                retake.append(row)  # recovery took it while the fault went in: undo it ourselves
                continue
            if mine:
                changed.append(row)
        # One statement per batch, not per target: a run over a thousand hosts writes a few rows.
        _write(changed, ["state", "error", "detail", "injected_at", "attempts"])
    for row in retake:
        try:
            driver.recover(_target_ref(row), fault, row.fault_id)
        except DriverError as error:
            log.warning("could not undo %s after a stop: %s", row.fault_id, error)
    injected = [r for r, o in results if not isinstance(o, DriverError)]
    with transaction.atomic():  # one commit for the step's events and the phase that follows
        if injected:
            event(run, "Injected", f"{fault.kind.name} {fault.action.name} on {len(injected)} targets")
        for text in failed[:20]:
            event(run, "Failed", text, warning=True)
        if not transient:
            return _after_injection(run)
    if transient and max(r.attempts for r, o in results if isinstance(o, TransientError)) < settings.RUN_MAX_ATTEMPTS:
        event(run, "Retrying", f"{len(transient)} targets hit a transient error; first: {transient[0]}", warning=True)
        return Step(retry_in=_backoff(run), message=transient[0])
    if transient:
        Injection.objects.filter(run=run, state=State.PENDING).update(state=State.FAILED)
        for text in transient[:20]:
            event(run, "Failed", f"gave up after {settings.RUN_MAX_ATTEMPTS} attempts: {text}", warning=True)
    return _after_injection(run)


def _after_injection(run: Run) -> Step:
    states = set(run.injections.values_list("state", flat=True))
    if State.PENDING in states or State.INJECTING in states:
        return DONE  # another worker is still at it
    now = timezone.now()
    if not states & {State.INJECTED}:
        return _fail(run, "no target took the fault")
    if run.one_shot:
        if _cas(run.pk, [Phase.INJECTING], Phase.FINISHED, finished_at=now, message="one-shot: done"):
            event(run, "Finished", "one-shot action done; nothing to recover")
            _ended(run.pk)
        return DONE
    if _cas(run.pk, [Phase.INJECTING], Phase.RUNNING):
        left = max((run.deadline - now).total_seconds(), 0)
        event(run, "Running", f"faults in place until {run.deadline:%Y-%m-%d %H:%M:%S} UTC ({left:.0f} s)")
        if run.spec.get("status_checks") and not run.checks.filter(purpose=CheckRun.Purpose.DURING).exists():
            checking.start_during(run)
    return DONE


def _write(rows: list[Injection], names: list[str]) -> None:
    """Save `names` of many rows: one statement executed for each (psycopg pipelines them), where
    bulk_update would spend seconds building one CASE expression per field for a thousand rows."""
    if not rows:
        return
    fields = [Injection._meta.get_field(n) for n in names]
    quote = connection.ops.quote_name
    sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608 - names from the model, quoted; values are params
        quote(Injection._meta.db_table), ", ".join(f"{quote(f.column)} = %s" for f in fields), quote("id")
    )
    params = [[f.get_db_prep_save(getattr(r, f.attname), connection) for f in fields] + [r.pk] for r in rows]
    with connection.cursor() as cursor:
        for start in range(0, len(params), BATCH):
            cursor.executemany(sql, params[start:start + BATCH])


def _fail(run: Run, message: str) -> Step:
    """The run ends as failed; anything that may be in place is recovered first."""
    if run.injections.filter(state__in=Injection.LIVE).exists():
        if _cas(run.pk, [Phase.INJECTING, Phase.RUNNING], Phase.RECOVERING, message=message):
            event(run, "Failed", message, warning=True)
            _publish_recover(run.pk)
        return DONE
    if _cas(run.pk, [Phase.PENDING, Phase.INJECTING], Phase.FAILED, message=message, finished_at=timezone.now()):
        Injection.objects.filter(run=run, state=State.PENDING).update(state=State.SKIPPED)
        event(run, "Failed", message, warning=True)
        _ended(run.pk)
    return DONE


def _backoff(run: Run) -> float:
    attempts = max(run.injections.values_list("attempts", flat=True), default=0)
    return min(settings.RUN_RETRY_BASE_SECONDS * 2**attempts, 60.0) * random.uniform(0.8, 1.2)  # noqa: S311


# Recovering ---------------------------------------------------------------------------------------


def recover(run_id: int) -> Step:
    """Take every live fault of a pausing or recovering run back out, then settle its phase."""
    run = Run.objects.select_related("environment").get(pk=run_id)
    if run.phase not in (Phase.PAUSING, Phase.RECOVERING):
        return DONE
    with transaction.atomic():
        Run.objects.select_for_update().filter(pk=run.pk).first()
        Injection.objects.filter(run=run, state=State.PENDING).update(state=State.SKIPPED)
        Injection.objects.filter(run=run, state__in=[State.INJECTING, State.INJECTED]).update(
            state=State.RECOVERING
        )
        rows = list(Injection.objects.filter(run=run, state=State.RECOVERING))
    if rows:
        if run.environment is None:
            return _settle(run, rows_left=len(rows), note="its environment was deleted; faults expire on their own")
        definition = run_definition(run)
        driver = None
        try:
            driver = driver_for(run.environment)
            fault = definition.fault
            results = _parallel(lambda row: driver.recover(_target_ref(row), fault, row.fault_id), rows)
        except DriverError as error:
            results = [(row, error) for row in rows]
        finally:
            if driver is not None:
                driver.close()
        now = timezone.now()
        done, problems = 0, []
        for row, outcome in results:
            row.attempts += 1
            if isinstance(outcome, DriverError):
                problems.append(f"{row.target_display}: {outcome}")
                row.error = f"recovery: {outcome}"
            else:
                done += 1
                row.state, row.recovered_at = State.RECOVERED, now
        _write(rows, ["state", "error", "recovered_at", "attempts"])
        if done:
            event(run, "Recovered", f"{done} targets recovered")
        if problems:
            event(run, "RecoveryFailed", f"{len(problems)} targets not recovered yet; first: {problems[0]}",
                  warning=True)
            return Step(retry_in=_backoff(run), message=problems[0])
    return _settle(run)


def _settle(run: Run, rows_left: int = 0, note: str = "") -> Step:
    now = timezone.now()
    if run.phase == Phase.PAUSING:
        if _cas(run.pk, [Phase.PAUSING], Phase.PAUSED):
            event(run, "Paused", "faults recovered; resume injects them again")
        return DONE
    took = run.injections.filter(state__in=[State.RECOVERED, State.INJECTED]).exists() or rows_left
    # Failed: targets were tried and none took the fault. Stopped before any was tried: finished.
    tried = run.injections.filter(state=State.FAILED).exists()
    final = Phase.FAILED if tried and not took and not run.dry_run else Phase.FINISHED
    message = run.message or ("finished" if final == Phase.FINISHED else "no target took the fault")
    if note:
        message = f"{message}; {note}"
    if _cas(run.pk, [Phase.RECOVERING], final, finished_at=now, message=message):
        event(run, "Finished" if final == Phase.FINISHED else "Failed", message, warning=final != Phase.FINISHED)
        _ended(run.pk)
    return DONE


def _publish_recover(run_id: int) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.recover_run.delay(run_id))


# Commands -----------------------------------------------------------------------------------------


def _command(actor: Actor, run: Run) -> Run:
    _require(actor, run.tenant)
    if run.archived:
        raise ValidationError({"phase": f"the run is {run.phase}: archived runs are read-only"})
    return run


def stop(actor: Actor, run: Run, reason: str = "", *, publish: bool = True) -> bool:
    """Recover every fault of the run now and end it. False when it was not running any more."""
    _command(actor, run)
    message = reason or f"stopped by {actor}"
    with transaction.atomic():
        if not _cas(run.pk, STOPPABLE, Phase.RECOVERING, message=message):
            return False
        event(run, "Stopped", message)
        audit.record(actor, run.tenant, "run.stop", run, object_id=run.uuid, after={"reason": message})
        if publish:
            _publish_recover(run.pk)
    return True


def pause(actor: Actor, run: Run) -> None:
    _command(actor, run)
    if run.one_shot:
        raise ValidationError({"phase": "a one-shot run cannot be paused"})
    with transaction.atomic():
        if not _cas(run.pk, [Phase.RUNNING], Phase.PAUSING):
            raise ValidationError({"phase": f"only a running run can be paused; this one is {_phase(run)}"})
        event(run, "Pausing", f"paused by {actor}")
        audit.record(actor, run.tenant, "run.pause", run, object_id=run.uuid)
        _publish_recover(run.pk)


def resume(actor: Actor, run: Run) -> None:
    _command(actor, run)
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.phase != Phase.PAUSED:
            raise ValidationError({"phase": f"only a paused run can be resumed; this one is {locked.phase}"})
        if locked.deadline <= timezone.now():
            raise ValidationError({"phase": "the run is past its deadline; start a new one"})
        last = max(locked.injections.values_list("round", flat=True), default=1)
        previous = list(locked.injections.filter(round=last).exclude(state__in=[State.FAILED, State.SKIPPED]))
        prefix = f"cp-{locked.uuid.hex[:12]}"
        Injection.objects.bulk_create(
            Injection(
                run=locked, round=last + 1, fault_id=f"{prefix}-{last + 1}-{i}", target_key=p.target_key,
                target_display=p.target_display, target_namespace=p.target_namespace, target=p.target,
            )
            for i, p in enumerate(previous)
        )
        _cas(run.pk, [Phase.PAUSED], Phase.INJECTING)
        event(run, "Resumed", f"resumed by {actor}: injecting {len(previous)} targets again")
        audit.record(actor, run.tenant, "run.resume", run, object_id=run.uuid)
        run_id = run.pk
        transaction.on_commit(lambda: _publish_inject(run_id))


def _publish_inject(run_id: int) -> None:
    from . import tasks

    tasks.inject_run.delay(run_id)


def _phase(run: Run) -> str:
    return Run.objects.filter(pk=run.pk).values_list("phase", flat=True).first() or run.phase


def halt(actor: Actor, tenant: Tenant, *, wait: float | None = None) -> dict[str, Any]:
    """The emergency stop: every active run of the tenant to recovering, then recovered right here,
    in parallel, without waiting for a worker (the queue may be what is broken); recover tasks are
    published too, in case this request dies half way."""
    _require(actor, tenant)
    reason = f"halted by {actor}"
    from . import workflows

    workflows.abort_all(actor, tenant, reason)  # first, so no workflow starts another fault
    with transaction.atomic():
        ids = list(Run.objects.filter(tenant=tenant, phase__in=STOPPABLE).values_list("pk", flat=True))
        moved = [pk for pk in ids if _cas(pk, STOPPABLE, Phase.RECOVERING, message=reason)]
        recovering = list(Run.objects.filter(tenant=tenant, phase=Phase.RECOVERING).values_list("pk", flat=True))
        for run in Run.objects.filter(pk__in=moved):
            event(run, "Halted", reason, warning=True)
        # The halt itself is on the tenant's timeline (and notifies), even when nothing was running.
        Event.objects.create(tenant=tenant, reason="TenantHalted", type=Event.Type.WARNING, object_type="tenant",
                             object_id=tenant.slug, message=f"{reason}: {len(moved)} runs stopped")
        audit.record(actor, tenant, "tenant.halt", tenant, after={"runs": len(moved)})
        for pk in recovering:
            _publish_recover(pk)
    settled = _recover_now(recovering, wait if wait is not None else settings.HALT_WAIT_SECONDS)
    left = Run.objects.filter(pk__in=recovering, phase=Phase.RECOVERING).count()
    return {"halted": len(moved), "recovered": settled, "still_recovering": left}


def _recover_now(run_ids: list[int], wait: float) -> int:
    """Recover runs here, one after the other (each run's targets in parallel), until `wait` is up."""
    deadline = timezone.now() + timedelta(seconds=wait)
    done = 0
    for pk in run_ids:
        if timezone.now() >= deadline:
            break
        try:
            recover(pk)
        except Exception:  # noqa: BLE001 - the published task and the reaper try again
            log.exception("halt: recovering run %s failed", pk)
            continue
        done += Run.objects.filter(pk=pk).exclude(phase=Phase.RECOVERING).exists()
    return done


# The reaper ---------------------------------------------------------------------------------------


def expire(run_id: int) -> bool:
    """The deadline has come (eta task or reaper): stop the run if it still holds anything."""
    run = Run.objects.select_related("tenant").filter(pk=run_id).first()
    if run is None or run.phase not in STOPPABLE or run.deadline > timezone.now():
        return False
    with transaction.atomic():
        if not _cas(run.pk, STOPPABLE, Phase.RECOVERING, message=run.message or "deadline reached"):
            return False
        event(run, "Deadline", f"the run's deadline {run.deadline:%H:%M:%S} UTC has come: recovering")
        _publish_recover(run.pk)
    return True


def reap(now: datetime | None = None) -> dict[str, int]:
    """The periodic safety net: runs past their deadline are stopped, recoveries that went quiet are
    published again, and agents silent for longer than their lease are marked disconnected."""
    from injector.models import Agent

    now = now or timezone.now()
    expired = [pk for pk in Run.objects.filter(phase__in=STOPPABLE, deadline__lte=now).values_list("pk", flat=True)
               if expire(pk)]
    quiet = now - timedelta(seconds=settings.RUN_STALL_SECONDS)
    stalled = list(
        Run.objects.filter(phase__in=[Phase.RECOVERING, Phase.PAUSING], updated_at__lte=quiet)
        .values_list("pk", flat=True)
    )
    stuck = list(Run.objects.filter(phase__in=[Phase.PENDING, Phase.INJECTING], updated_at__lte=quiet,
                                    deadline__gt=now).values_list("pk", flat=True))
    from . import tasks

    for pk in stalled:
        Run.objects.filter(pk=pk).update(updated_at=now)
        tasks.recover_run.delay(pk)
    for pk in stuck:
        Run.objects.filter(pk=pk).update(updated_at=now)
        tasks.inject_run.delay(pk)
    lease = now - timedelta(seconds=settings.AGENT_LEASE_SECONDS)
    silent = 0
    for agent in Agent.objects.filter(connected=True, last_heartbeat__lt=lease).select_related("environment"):
        # Compare-and-set: a heartbeat that came in meanwhile keeps the agent; each loss is one event.
        if Agent.objects.filter(pk=agent.pk, connected=True, last_heartbeat__lt=lease).update(
            connected=False, connected_gateway="", session=None
        ):
            silent += 1
            Event.objects.create(
                tenant_id=agent.tenant_id, reason="AgentLost", type=Event.Type.WARNING, object_type="agent",
                object_id=str(agent.uuid), message=f"agent {agent.name} in {agent.environment.name} sent no heartbeat "
                f"for {settings.AGENT_LEASE_SECONDS} s: marked disconnected; its faults recover at their expiry",
            )
    from . import checking, workflows

    late_checks = checking.overdue(now)
    for pk in late_checks:
        tasks.probe_check.delay(pk)
    advanced = workflows.reap(now)
    return {"expired": len(expired), "recovering": len(stalled), "injecting": len(stuck), "agents": silent,
            "checks": len(late_checks), "workflows": advanced}
