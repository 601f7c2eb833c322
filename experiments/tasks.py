"""Celery tasks of the run lifecycle: ids in, one service call (experiments.runs), a retry with
backoff when the service says a step hit a transient error. Late acks are safe because every step is
a compare-and-set on the database: a redelivered task finds the work done and does nothing."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from . import runs

RETRIES = 20  # the service bounds attempts per target; this only bounds a run stuck on its driver


def _follow(task: Any, step: runs.Step) -> str:
    if step.retry_in is not None:
        raise task.retry(countdown=step.retry_in, max_retries=RETRIES)
    return step.message or "done"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def inject_run(self: Any, run_id: int) -> str:
    return _follow(self, runs.inject(run_id))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def recover_run(self: Any, run_id: int) -> str:
    return _follow(self, runs.recover(run_id))


@shared_task(acks_late=True, ignore_result=True)
def expire_run(run_id: int) -> bool:
    return runs.expire(run_id)


@shared_task(ignore_result=True)
def reap() -> dict[str, int]:
    return runs.reap()


@shared_task(acks_late=True, ignore_result=True)
def run_ended(run_id: int) -> str:
    """A run has ended: its steady state is judged and its workflow node moves on."""
    from . import checking, workflows

    try:
        return checking.after_run(run_id)
    finally:
        workflows.on_run_ended(run_id)


@shared_task(acks_late=True, ignore_result=True)
def probe_check(check_id: int) -> None:
    from . import checking

    delay = checking.probe_once(check_id)
    if delay is not None:
        probe_check.apply_async((check_id,), countdown=delay)


@shared_task(acks_late=True, ignore_result=True)
def advance_workflow(workflow_run_id: int) -> str:
    from . import workflows

    return workflows.advance(workflow_run_id)


@shared_task(ignore_result=True)
def fire_schedules() -> int:
    """The beat's sweep: claim the ticks due before the next sweep (experiments.scheduling)."""
    from . import scheduling

    return len(scheduling.sweep())


@shared_task(acks_late=True, ignore_result=True)
def fire_schedule(schedule_id: int, tick: str) -> str:
    from datetime import datetime

    from . import scheduling

    return scheduling.fire(schedule_id, datetime.fromisoformat(tick))
