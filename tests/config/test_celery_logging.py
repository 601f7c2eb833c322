"""The Celery log filter that keeps the per-second sweeps out of the log, and nothing else."""
from __future__ import annotations

import logging

from config.celery import QuietSweeps


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_sweep_chatter_goes_and_everything_else_stays() -> None:
    quiet = QuietSweeps()
    assert not quiet.filter(record("celery.app.trace", logging.INFO,
                                   "Task experiments.tasks.fire_schedules[1] succeeded in 0.003s: 0"))
    assert not quiet.filter(record("celery.beat", logging.INFO,
                                   "Scheduler: Sending due task reap-runs (experiments.tasks.reap)"))
    assert quiet.filter(record("celery.app.trace", logging.INFO, "Task experiments.tasks.inject_run[2] succeeded"))
    assert quiet.filter(record("celery.app.trace", logging.ERROR,
                               "Task experiments.tasks.fire_schedules[3] raised unexpected: boom"))
    assert quiet.filter(record("experiments.scheduling", logging.INFO, "experiments.tasks.fire_schedules"))
