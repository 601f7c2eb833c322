"""The Celery application: Redis as broker, tasks discovered in every installed app."""
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

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
