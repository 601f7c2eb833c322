"""Status checks at work: a run's steady state (before, during, after), a workflow's StatusCheck
nodes, and StatusChecks on their own.

A check is a CheckRun row; each probe (experiments.probes) is a CheckResult. Chaos Mesh's semantics:
`failureThreshold` failures in a row fail the check, `successThreshold` successes in a row pass a
Synchronous one; a Continuous one passes when its duration is up without failing. Continuous checks
are probed by a Celery task that publishes itself again after `intervalSeconds` (the reaper
republishes one that went quiet); Synchronous checks before and after a run are probed in place.

A failing check with `abort` set stops its run or aborts its workflow right in the probing task, and
recovers the faults there too (as a halt does), so they are out within a second or two of the
threshold being crossed, whatever the queue is doing.
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from injector.manifests import STATUS_CHECK_SPEC
from tenants.actors import Actor

from .models import CheckResult, CheckRun, Event, Run, StatusCheck, WorkflowNode

log = logging.getLogger(__name__)
CPhase = CheckRun.Phase


#: Chaos Mesh's defaults for what a StatusCheck spec leaves out.
DEFAULTS = {"mode": "Synchronous", "timeoutSeconds": 1, "intervalSeconds": 10, "failureThreshold": 3,
            "successThreshold": 1, "recordsHistoryLimit": 100}


def parsed(spec: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec with its defaults filled in (what the probes read)."""
    return DEFAULTS | STATUS_CHECK_SPEC.parse(spec, "spec")


def _seconds(value: Any) -> float:
    return value.nanoseconds / 1e9


def check_event(check: CheckRun, reason: str, message: str, *, warning: bool = False) -> Event:
    node = check.workflow_node
    return Event.objects.create(
        tenant_id=check.tenant_id, run_id=check.run_id, workflow_run_id=node.workflow_run_id if node else None,
        reason=reason, message=message[:4000], type=Event.Type.WARNING if warning else Event.Type.NORMAL,
        object_type="statuscheck", object_id=str(check.uuid),
    )


def create(
    tenant_id: int, name: str, spec: dict[str, Any], purpose: str, *, run: Run | None = None,
    node: WorkflowNode | None = None, status_check: StatusCheck | None = None, abort: bool = False,
    until: datetime | None = None,
) -> CheckRun:
    """A CheckRun starting now. A Continuous one checks until its duration is up (or `until`, its
    owner's end, if that comes first)."""
    values = parsed(spec)
    now = timezone.now()
    ends_at = None
    if values["mode"] == "Continuous":
        ends_at = now + timedelta(seconds=_seconds(values["duration"]))
        if until is not None:
            ends_at = min(ends_at, until)
    elif until is not None and purpose in (CheckRun.Purpose.DURING, CheckRun.Purpose.NODE):
        ends_at = until
    return CheckRun.objects.create(
        tenant_id=tenant_id, name=name, spec=spec, purpose=purpose, abort=abort, run=run, workflow_node=node,
        status_check=status_check, ends_at=ends_at, next_probe_at=now,
    )


def publish(check_id: int, countdown: float = 0.0) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.probe_check.apply_async((check_id,), countdown=max(countdown, 0.0)))


def _record(check: CheckRun, outcome: Any, limit: int) -> None:
    CheckResult.objects.create(check_run=check, ok=outcome.ok, latency_ms=outcome.latency_ms,
                               detail=outcome.detail[:500])
    newest = CheckResult.objects.filter(check_run=check).order_by("-id").values_list("pk", flat=True)
    oldest_kept_out = newest[limit:limit + 1]
    if oldest_kept_out:
        CheckResult.objects.filter(check_run=check, pk__lte=oldest_kept_out[0]).delete()


def probe_once(check_id: int) -> float | None:
    """Probe a running check once and judge it. Returns the seconds until the next probe, or None
    when the check has ended (or was not running)."""
    check = CheckRun.objects.select_related("workflow_node").filter(pk=check_id).first()
    if check is None or check.phase != CPhase.RUNNING:
        return None
    values = parsed(check.spec)
    interval = float(values["intervalSeconds"])
    now = timezone.now()
    if check.ends_at is not None and now >= check.ends_at:
        _end(check, CPhase.SUCCEEDED, f"no failure in {check.probes} probes until the end of its window")
        return None
    from . import probes  # noqa: PLC0415 - only workers probe

    started = time.monotonic()
    outcome = probes.probe(values)
    with transaction.atomic():
        locked = CheckRun.objects.select_for_update().get(pk=check.pk)
        if locked.phase != CPhase.RUNNING:
            return None
        _record(locked, outcome, int(values["recordsHistoryLimit"]))
        if outcome.ok:
            locked.successes, locked.failures = locked.successes + 1, 0
        else:
            locked.failures, locked.successes = locked.failures + 1, 0
        locked.probes += 1
        locked.next_probe_at = timezone.now() + timedelta(seconds=interval)
        locked.save(update_fields=["successes", "failures", "probes", "next_probe_at"])
    verdict = None
    if locked.failures >= int(values["failureThreshold"]):
        verdict = CPhase.FAILED
    elif values["mode"] == "Synchronous" and locked.successes >= int(values["successThreshold"]):
        verdict = CPhase.SUCCEEDED
    if verdict is not None:
        text = (f"{locked.failures} failures in a row; last: {outcome.detail}" if verdict == CPhase.FAILED
                else f"{locked.successes} successes in a row; last: {outcome.detail}")
        _end(locked, verdict, text)
        return None
    if locked.ends_at is not None and timezone.now() + timedelta(seconds=interval) > locked.ends_at:
        return max((locked.ends_at - timezone.now()).total_seconds(), 0.0)
    return max(interval - (time.monotonic() - started), 0.0)


def _end(check: CheckRun, phase: str, message: str) -> None:
    with transaction.atomic():
        if not CheckRun.objects.filter(pk=check.pk, phase=CPhase.RUNNING).update(
            phase=phase, message=message[:4000], finished_at=timezone.now(), next_probe_at=None
        ):
            return
        failed = phase == CPhase.FAILED
        check_event(check, "StatusCheckFailed" if failed else "StatusCheckSucceeded",
                    f"status check {check.name}: {message}", warning=failed)
    if failed and check.abort:
        _abort_owner(check, f"status check {check.name} failed: {message}")
    elif failed and check.purpose == CheckRun.Purpose.DURING and check.run_id:
        Event.objects.create(
            tenant_id=check.tenant_id, run_id=check.run_id, reason="SteadyStateLost", type=Event.Type.WARNING,
            message=f"status check {check.name} failed during the run (not set to abort): {message}"[:4000],
            object_type="run", object_id=str(check.run.uuid) if check.run else "",
        )
    if check.workflow_node_id is not None:
        from . import workflows

        workflows.publish_advance(check.workflow_node.workflow_run_id)


def _abort_owner(check: CheckRun, reason: str) -> None:
    """Stop the run, or abort the workflow, the failed check guards, and recover its faults now."""
    from . import runs, workflows

    actor = Actor.system_actor(f"statuscheck:{check.name}")
    if check.workflow_node_id is not None:
        workflows.abort(actor, check.workflow_node.workflow_run, reason)
        return
    if check.run_id is not None:
        run = Run.objects.select_related("tenant").get(pk=check.run_id)
        if run.phase in runs.STOPPABLE and runs.stop(actor, run, reason):
            runs._recover_now([run.pk], settings.HALT_WAIT_SECONDS)


def stop_for(*, run: Run | None = None, node: WorkflowNode | None = None, message: str = "") -> int:
    """End the running checks of a run or a node (their owner has ended)."""
    checks = CheckRun.objects.filter(phase=CPhase.RUNNING)
    checks = checks.filter(run=run) if run is not None else checks.filter(workflow_node=node)
    return checks.update(phase=CPhase.STOPPED, finished_at=timezone.now(), next_probe_at=None,
                         message=message or "its owner ended")


def run_inline(check: CheckRun, *, budget: float | None = None) -> CheckRun:
    """Probe a Synchronous check here until it passes or fails (steady state before and after a
    run), sleeping its interval between probes; `budget` bounds the whole wait."""
    give_up = time.monotonic() + (budget if budget is not None else settings.CHECK_INLINE_BUDGET_SECONDS)
    while True:
        delay = probe_once(check.pk)
        if delay is None:
            break
        if time.monotonic() + delay > give_up:
            _end(check, CPhase.FAILED, f"undecided after {check.probes + 1} probes: the steady state is not certain")
            break
        time.sleep(delay)
    check.refresh_from_db()
    return check


# A run's steady state -------------------------------------------------------------------------------


def _steady_checks(run: Run) -> list[dict[str, Any]]:
    return list(run.spec.get("status_checks") or [])


def before(run: Run) -> str | None:
    """Check the steady state before injecting; the reason it does not hold, or None if it does."""
    for item in _steady_checks(run):
        spec = dict(item["spec"], mode="Synchronous")
        spec.pop("duration", None)
        check = run_inline(create(run.tenant_id, item["name"], spec, CheckRun.Purpose.BEFORE, run=run))
        if check.phase != CPhase.SUCCEEDED:
            return f"the steady state does not hold before injecting: status check {item['name']}: {check.message}"
    return None


def start_during(run: Run) -> list[CheckRun]:
    """Continuous checks for as long as the run's faults are in (until its deadline)."""
    made = []
    for item in _steady_checks(run):
        spec = dict(item["spec"])
        if spec.get("mode", "Synchronous") != "Continuous":
            spec["mode"] = "Continuous"
        # The run's deadline ends it (`until`); its own duration, if shorter, ends it first.
        spec.setdefault("duration", f"{max(math.ceil((run.deadline - timezone.now()).total_seconds()), 1)}s")
        check = create(run.tenant_id, item["name"], spec, CheckRun.Purpose.DURING, run=run,
                       abort=bool(item.get("abort")), until=run.deadline)
        publish(check.pk)
        made.append(check)
    return made


def after_run(run_id: int) -> str:
    """The run has ended: its checks stop; the steady state is checked once more and the verdict
    (held, broken, not restored) recorded on the run."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return ""
    stop_for(run=run, message="the run ended")
    items = _steady_checks(run)
    if not items or run.dry_run:
        return ""
    ran = CheckRun.objects.filter(run=run)
    if run.phase == Run.Phase.REFUSED and not ran.exists():
        return ""
    broken = ran.filter(purpose__in=[CheckRun.Purpose.BEFORE, CheckRun.Purpose.DURING], phase=CPhase.FAILED)
    verdict = Run.SteadyState.BROKEN if broken.exists() else Run.SteadyState.HELD
    if run.phase != Run.Phase.REFUSED and not ran.filter(purpose=CheckRun.Purpose.AFTER).exists():
        for item in items:
            spec = dict(item["spec"], mode="Synchronous")
            spec.pop("duration", None)
            check = run_inline(create(run.tenant_id, item["name"], spec, CheckRun.Purpose.AFTER, run=run))
            if check.phase != CPhase.SUCCEEDED and verdict == Run.SteadyState.HELD:
                verdict = Run.SteadyState.NOT_RESTORED
    Run.objects.filter(pk=run.pk).update(steady_state=verdict)
    text = {Run.SteadyState.HELD: "the steady state held before, during and after the run",
            Run.SteadyState.BROKEN: "the steady state did not hold during the run",
            Run.SteadyState.NOT_RESTORED: "the steady state did not come back after the run"}[verdict]
    Event.objects.create(
        tenant_id=run.tenant_id, run=run, reason="SteadyStateHeld" if verdict == Run.SteadyState.HELD
        else "SteadyStateBroken", message=text, type=Event.Type.NORMAL if verdict == Run.SteadyState.HELD
        else Event.Type.WARNING, object_type="run", object_id=str(run.uuid),
    )
    return verdict


def overdue(now: datetime) -> list[int]:
    """Running continuous checks whose probe is late (a lost task): the reaper publishes them again."""
    late = now - timedelta(seconds=settings.CHECK_STALL_SECONDS)
    ids = list(CheckRun.objects.filter(phase=CPhase.RUNNING, next_probe_at__lt=late).exclude(
        purpose__in=[CheckRun.Purpose.BEFORE, CheckRun.Purpose.AFTER]).values_list("pk", flat=True))
    CheckRun.objects.filter(pk__in=ids).update(next_probe_at=now + timedelta(seconds=settings.CHECK_STALL_SECONDS))
    return ids

