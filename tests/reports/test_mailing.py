"""The monthly audit report by e-mail (reports.mailing.send_monthly, the task behind beat): each enabled
subscription gets the report of the month before, as PDF and CSV, once, however often the task runs; a
send that fails (an SMTP server that refuses) changes nothing and is tried again at the next run."""
from __future__ import annotations

import csv
import io
import socket
from datetime import date, timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from reports import audit_report, mailing, tasks
from reports.models import AuditReportSubscription
from tenants import services as tenant_services
from tenants.actors import Actor
from tenants.models import AuditEntry

pytestmark = pytest.mark.django_db
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def outbox(settings: Any) -> list[Any]:
    settings.EMAIL_BACKEND = LOCMEM
    settings.DEFAULT_FROM_EMAIL = "reports@chaosplane.test"
    mail.outbox = []
    return mail.outbox


def next_month() -> date:
    """The first day of next month: its "month before" is this month, where the test's entries are."""
    return (timezone.now().date().replace(day=1) + timedelta(days=32)).replace(day=1)


def subscribe(world: Any, *recipients: str, last_period: date | None = None, enabled: bool = True) -> Any:
    return AuditReportSubscription.objects.create(tenant=world.acme, recipients=list(recipients), enabled=enabled,
                                                  last_period=last_period)


def test_the_report_of_the_month_before_is_sent_once_with_pdf_and_csv(world: Any, outbox: list[Any]) -> None:
    tenant_services.update_policy(Actor(user=world.owner.user), world.acme, {"max_targets": 5})
    sub = subscribe(world, "sre@example.com", "audit@example.org")
    month = audit_report.previous_month(next_month())
    entries = list(AuditEntry.objects.filter(tenant=world.acme).order_by("seq"))

    assert mailing.send_monthly(today=next_month()) == 1

    (message,) = outbox
    assert message.to == ["sre@example.com", "audit@example.org"] and message.from_email == "reports@chaosplane.test"
    assert message.subject == f"[Chaosplane] Audit report acme {month.start:%Y-%m}"
    assert "Audit chain: verified" in message.body and entries[-1].entry_hash in message.body
    (pdf_name, pdf_bytes, pdf_type), (csv_name, csv_text, csv_type) = message.attachments
    assert pdf_name == f"audit-report-acme-{month.slug()}.pdf" and pdf_type == "application/pdf"
    assert pdf_bytes.startswith(b"%PDF-")
    assert csv_name == f"audit-report-acme-{month.slug()}.csv" and csv_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(int(r["seq"]), r["entry_hash"]) for r in rows] == [(e.seq, e.entry_hash) for e in entries]
    sub.refresh_from_db()
    assert sub.last_period == month.start
    sent = AuditEntry.objects.filter(tenant=world.acme).order_by("-seq").first()
    assert (sent.action, sent.actor_label, sent.after) == (
        "auditreport.send", "system:reports", {"period": month.start.isoformat(), "recipients": 2})

    # The hourly task runs again in the same month: nothing more is sent.
    assert mailing.send_monthly(today=next_month()) == 0
    assert mailing.send_monthly(today=next_month() + timedelta(days=3)) == 0
    assert len(outbox) == 1


def test_disabled_and_already_sent_subscriptions_are_not_sent(world: Any, outbox: list[Any]) -> None:
    month = audit_report.previous_month(next_month())
    subscribe(world, "sre@example.com", enabled=False)
    AuditReportSubscription.objects.create(tenant=world.globex, recipients=["m@example.com"], last_period=month.start)

    assert mailing.send_monthly(today=next_month()) == 0
    assert outbox == []


def test_a_new_subscription_starts_with_the_coming_month(world: Any, outbox: list[Any]) -> None:
    mailing.save_subscription(Actor(user=world.owner.user), world.acme, recipients=["sre@example.com"], enabled=True)

    assert mailing.send_monthly() == 0  # last month was before the subscription
    assert mailing.send_monthly(today=next_month()) == 1 and outbox[0].to == ["sre@example.com"]


def test_the_beat_task_sends_the_month_before_today(world: Any, outbox: list[Any]) -> None:
    subscribe(world, "sre@example.com")
    tasks.send_monthly_audit_reports()
    tasks.send_monthly_audit_reports()
    (message,) = outbox
    month = audit_report.previous_month(timezone.now().date())
    assert message.subject.endswith(f"{month.start:%Y-%m}") and len(message.attachments) == 2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_send_that_fails_changes_nothing_and_is_tried_again(world: Any, outbox: list[Any], settings: Any) -> None:
    sub = subscribe(world, "sre@example.com")
    entries = AuditEntry.objects.filter(tenant=world.acme).count()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 2

    assert mailing.send_monthly(today=next_month()) == 0  # connection refused: logged, not raised

    sub.refresh_from_db()
    assert sub.last_period is None and AuditEntry.objects.filter(tenant=world.acme).count() == entries
    settings.EMAIL_BACKEND = LOCMEM
    assert mailing.send_monthly(today=next_month()) == 1 and len(outbox) == 1
