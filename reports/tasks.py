"""Celery tasks of reports: thin entry points, the work is in reports.webhooks and reports.mailing."""
from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def deliver(delivery_id: int) -> None:
    """One attempt at one webhook delivery; a failure schedules the next with backoff."""
    from . import webhooks

    webhooks.attempt(delivery_id)


@shared_task(ignore_result=True)
def retry_due_deliveries() -> None:
    """Publish again the attempts that are due and whose task was lost (a worker restart)."""
    from . import webhooks

    webhooks.retry_due()


@shared_task(ignore_result=True)
def send_monthly_audit_reports() -> None:
    """On and after the first of a month: each subscribed tenant's report for the month before, once."""
    from . import mailing

    mailing.send_monthly()
