"""Schedules at work: cron ticks that start runs and workflow runs.

Celery beat (django-celery-beat's DatabaseScheduler, entry `fire-schedules` in settings) calls
`sweep` every SCHEDULER_SWEEP_SECONDS. A sweep claims every tick due before the next sweep by moving
the schedule's `next_fire_at` forward (under SKIP LOCKED, so two beats or a slow sweep never fire a
tick twice) and publishes `fire_schedule` with the tick as its eta, so a run starts on its second,
not on the sweep's. The fire times come from injector.cron (seconds, descriptors, `@every`, time
zones and daylight saving time as Chaos Mesh's cron parser has them), which celery's crontab cannot
express.

At each tick (`fire`): a paused or deleted schedule does nothing; a tick missed by more than
startingDeadlineSeconds is skipped with a MissedSchedule event; concurrencyPolicy Forbid skips a
tick while a run of the schedule is active; the policy is checked as for any run, and a refusal is
a ScheduleRefused event (no run is written); the run's origin is the schedule. Then the schedule's
ended runs beyond historyLimit leave its list, oldest first (they stay archived).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from injector import cron
from injector.manifests import ScheduleDefinition
from tenants.actors import Actor

from . import runs
from .models import Event, Run, Schedule, WorkflowNode, WorkflowRun

log = logging.getLogger(__name__)


def parse(expression: str, time_zone: str) -> tuple[cron.Cron, Any]:
    """The cron and zone of a schedule, or a ValidationError naming the field."""
    try:
        spec = cron.parse(expression)
    except cron.CronError as error:
        raise ValidationError({"cron": str(error)}) from None
    try:
        zone = cron.zone(time_zone)
    except cron.CronError as error:
        raise ValidationError({"time_zone": str(error)}) from None
    return spec, zone


def next_times(schedule: Schedule, n: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next `n` fire times (none while paused)."""
    if schedule.paused:
        return []
    spec, zone = parse(schedule.cron, schedule.time_zone)
    start = after or schedule.next_fire_at or timezone.now()
    if schedule.next_fire_at is not None and after is None:
        return [schedule.next_fire_at, *cron.next_times(spec, schedule.next_fire_at, zone, n - 1)][:n]
    return cron.next_times(spec, start, zone, n)


def arm(schedule: Schedule, now: datetime | None = None) -> None:
    """Set the schedule's next tick from now (on create, resume and cron changes)."""
    now = now or timezone.now()
    if schedule.paused:
        schedule.next_fire_at = None
        return
    spec, zone = parse(schedule.cron, schedule.time_zone)
    schedule.next_fire_at = cron.next_after(spec, now, zone)


def schedule_event(schedule: Schedule, reason: str, message: str, *, warning: bool = False,
                   run: Run | None = None, workflow_run: WorkflowRun | None = None) -> Event:
    return Event.objects.create(
        tenant_id=schedule.tenant_id, reason=reason, message=message[:4000], run=run, workflow_run=workflow_run,
        type=Event.Type.WARNING if warning else Event.Type.NORMAL, object_type="schedule",
        object_id=str(schedule.uuid),
    )


# The sweep -----------------------------------------------------------------------------------------


def sweep(now: datetime | None = None, *, publish: bool = True) -> list[tuple[int, datetime]]:
    """Claim every tick due before the next sweep and publish it (with its time as eta). Returns
    (schedule id, tick) for each claimed tick."""
    now = now or timezone.now()
    horizon = now + timedelta(seconds=settings.SCHEDULER_SWEEP_SECONDS * 2)
    claimed: list[tuple[int, datetime]] = []
    moves: list[tuple[datetime, datetime, int]] = []  # (next_fire_at, last_fire_at, id)
    with transaction.atomic():
        due = list(Schedule.objects.select_for_update(skip_locked=True)
                   .filter(paused=False, next_fire_at__lte=horizon).order_by("next_fire_at")[:1000])
        for schedule in due:
            tick = schedule.next_fire_at
            try:
                spec, zone = parse(schedule.cron, schedule.time_zone)
            except ValidationError as error:
                Schedule.objects.filter(pk=schedule.pk).update(paused=True, next_fire_at=None)
                schedule_event(schedule, "ScheduleFailed", f"paused: its cron no longer parses: {error}",
                               warning=True)
                continue
            following = cron.next_after(spec, tick, zone)
            late = (now - tick).total_seconds()
            limit = schedule.starting_deadline_seconds
            if limit is not None and late > limit:
                following = cron.next_after(spec, now, zone)
                Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=following)
                schedule_event(schedule, "MissedSchedule", f"the tick of {_when(tick, zone)} was missed by "
                               f"{late:.0f} s, more than startingDeadlineSeconds {limit}: skipped", warning=True)
                continue
            missed = 0
            while following <= now:  # several ticks went by (the platform was down): fire once, late
                missed += 1
                following = cron.next_after(spec, following, zone)
            moves.append((following, tick, schedule.pk))
            if missed:
                schedule_event(schedule, "MissedSchedule", f"{missed} ticks before {_when(now, zone)} were missed; "
                               f"firing once now for {_when(tick, zone)}", warning=True)
            claimed.append((schedule.pk, tick))
        _advance(moves)
        if publish and claimed:
            transaction.on_commit(lambda: _publish(claimed))
    return claimed


def _publish(claimed: list[tuple[int, datetime]]) -> None:
    """One fire_schedule task per tick, with the tick as eta, over one producer connection."""
    from . import tasks

    with tasks.fire_schedule.app.producer_or_acquire() as producer:
        for pk, tick in claimed:
            tasks.fire_schedule.apply_async((pk, tick.isoformat()), eta=max(tick, timezone.now()), producer=producer)


def _advance(moves: list[tuple[datetime, datetime, int]]) -> None:
    """Move many schedules' cursors in one pipelined statement (a busy minute claims thousands)."""
    if not moves:
        return
    table, quote = Schedule._meta.db_table, connection.ops.quote_name
    sql = f"UPDATE {quote(table)} SET next_fire_at = %s, last_fire_at = %s WHERE id = %s"  # noqa: S608 - constants
    with connection.cursor() as cursor:
        cursor.executemany(sql, moves)


def _when(moment: datetime, zone: Any) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


# A tick --------------------------------------------------------------------------------------------


def fire(schedule_id: int, tick: datetime, now: datetime | None = None) -> str:
    """Start what the schedule runs, for its tick `tick`; what happened, in a word."""
    now = now or timezone.now()
    with transaction.atomic():
        schedule = (Schedule.objects.select_for_update(of=("self",)).select_related("tenant", "experiment", "workflow",
                                                                        "environment", "workflow_node")
                    .filter(pk=schedule_id).first())
        if schedule is None:
            return "deleted"
        if schedule.paused:
            return "paused"
        late = (now - tick).total_seconds()
        if schedule.starting_deadline_seconds is not None and late > schedule.starting_deadline_seconds:
            schedule_event(schedule, "MissedSchedule", f"the tick of {tick:%H:%M:%S} UTC started {late:.0f} s late, "
                           f"more than startingDeadlineSeconds {schedule.starting_deadline_seconds}: skipped",
                           warning=True)
            return "missed"
        if schedule.concurrency_policy == Schedule.ConcurrencyPolicy.FORBID and active(schedule):
            schedule_event(schedule, "ScheduleSkipped", f"the tick of {tick:%H:%M:%S} UTC was skipped: a run of "
                           "this schedule is still active (concurrencyPolicy Forbid)")
            return "skipped"
        if schedule.environment is None:
            schedule_event(schedule, "ScheduleFailed", "no environment to run against: set one on the schedule",
                           warning=True)
            return "failed"
        actor = Actor.system_actor(f"schedule:{schedule.name}")
        try:
            with transaction.atomic():
                started = _start(actor, schedule)
        except runs.PolicyRefusal as refusal:
            schedule_event(schedule, "ScheduleRefused", f"the tick of {tick:%H:%M:%S} UTC was refused: "
                           f"{refusal.message}", warning=True)
            return "refused"
        except (ValidationError, PermissionDenied) as error:
            from .workflows import _text

            schedule_event(schedule, "ScheduleFailed", f"the tick of {tick:%H:%M:%S} UTC could not start: "
                           f"{_text(error)}", warning=True)
            return "failed"
        is_run = isinstance(started, Run)
        what = "run" if is_run else "workflow run"
        schedule_event(
            schedule, "ScheduleFired", f"tick of {tick:%H:%M:%S.%f}"[:-3] + f" UTC: started {what} {started.uuid}",
            run=started if is_run else None, workflow_run=None if is_run else started,
        )
        trim_history(schedule)
    return "fired"


def _start(actor: Actor, schedule: Schedule) -> Run | WorkflowRun:
    if schedule.workflow_node_id is not None:
        return _start_node_run(actor, schedule)
    if schedule.workflow_id is not None:
        from .workflows import start_workflow

        return start_workflow(actor, schedule.workflow, schedule.environment, dry_run=schedule.dry_run,
                              origin=Run.Origin.SCHEDULE, schedule=schedule, record_refusal=False)
    if schedule.experiment_id is None:
        raise ValidationError({"experiment": "the schedule runs neither an experiment nor a workflow"})
    return runs.start_run(actor, schedule.experiment, schedule.environment, dry_run=schedule.dry_run,
                          origin=Run.Origin.SCHEDULE, schedule=schedule, record_refusal=False)


def active(schedule: Schedule) -> bool:
    return (Run.objects.filter(schedule=schedule, phase__in=Run.ACTIVE).exists()
            or WorkflowRun.objects.filter(schedule=schedule, phase=WorkflowRun.Phase.RUNNING).exists())


def trim_history(schedule: Schedule) -> int:
    """Ended runs beyond historyLimit leave the schedule's list, oldest first (still archived)."""
    limit = schedule.history_limit
    if limit is None:
        return 0
    dropped = 0
    for model, ended in ((Run, Run.ENDED), (WorkflowRun, WorkflowRun.ENDED)):
        keep = model.objects.filter(schedule=schedule, phase__in=ended).order_by("-created_at", "-id")
        old = list(keep.values_list("pk", flat=True)[limit:])
        if old:
            dropped += model.objects.filter(pk__in=old).update(schedule=None)
    if dropped:
        schedule_event(schedule, "HistoryTrimmed", f"{dropped} ended runs beyond historyLimit {limit} left the "
                       "schedule's list (they stay in the archive)")
    return dropped


# Schedule nodes of workflows -----------------------------------------------------------------------


def start_node_schedule(wr: WorkflowRun, node: WorkflowNode, definition: ScheduleDefinition) -> Schedule:
    """A workflow's Schedule node: a schedule of its own, owned by the node, firing until the node's
    deadline (the engine deletes it then)."""
    parse(definition.schedule, "UTC")
    schedule = Schedule(
        tenant_id=wr.tenant_id, name=f"{wr.workflow_name}.{node.name}.{wr.uuid.hex[:8]}"[:253],
        namespace=wr.namespace, cron=definition.schedule, environment=wr.environment, dry_run=wr.dry_run,
        concurrency_policy=definition.concurrency_policy, history_limit=definition.history_limit,
        starting_deadline_seconds=definition.starting_deadline_seconds, workflow_node=node,
    )
    arm(schedule)
    schedule.save()
    return schedule


def _start_node_run(actor: Actor, schedule: Schedule) -> Run:
    from .workflows import definition_of

    node = schedule.workflow_node
    wr = node.workflow_run
    template = {n.name: n for n in definition_of(wr.workflow_name, wr.namespace, wr.spec).nodes}[node.name]
    definition = template.schedule.experiment
    snap = {"name": f"{wr.workflow_name}/{node.name}", "description": "", "namespace":
            definition.meta.namespace or wr.namespace, "labels": dict(definition.meta.labels),
            "spec": definition.spec(), "kind": definition.kind.name}
    left = (node.deadline - timezone.now()).total_seconds() if node.deadline else None
    return runs.launch(actor, wr.tenant, definition, snap, schedule.environment, dry_run=schedule.dry_run,
                       origin=Run.Origin.WORKFLOW, schedule=schedule, workflow_node=node, max_seconds=left,
                       record_refusal=False)
