"""The Celery application: Redis as broker, tasks discovered in every installed app."""
import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("chaosplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _freeze(**kwargs: object) -> None:
    from config.memory import freeze_startup_objects

    freeze_startup_objects()  # a solo worker: the objects loaded so far are there for good


@worker_process_init.connect
def _freeze_child(**kwargs: object) -> None:
    from config.memory import freeze_startup_objects

    freeze_startup_objects()  # each prefork child


#: Beat's sweeps, every second or few: their "sent", "received" and "succeeded" lines would bury the
#: log. Their work shows as events when it does anything.
QUIET_TASKS = ("experiments.tasks.fire_schedules", "experiments.tasks.reap", "reports.tasks.retry_due_deliveries")


class QuietSweeps(logging.Filter):
    """Drops the INFO lines celery writes for each run of a periodic sweep (warnings and errors stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("celery"):
            return True
        message = record.getMessage()
        return not any(name in message for name in QUIET_TASKS)


@after_setup_logger.connect
def _quiet_sweeps(logger: logging.Logger, **kwargs: object) -> None:
    for handler in logger.handlers:
        handler.addFilter(QuietSweeps())
