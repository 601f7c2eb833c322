"""The monthly audit report by e-mail: who gets it (the tenant's AuditReportSubscription, set by its
owners), and sending each subscribed tenant the report of the month before, once, however often the
task runs and however many workers run it."""
from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants import audit
from tenants.actors import Actor
from tenants.models import Tenant
from tenants.roles import Role, at_least

from . import audit_report
from .models import AuditReportSubscription

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
SYSTEM = "system:reports"


# The subscription --------------------------------------------------------------------------------


def subscription_of(tenant: Tenant) -> dict[str, Any]:
    """What the tenant's subscription is (a tenant without one: disabled, nobody)."""
    sub = AuditReportSubscription.objects.filter(tenant=tenant).first()
    today = timezone.now().date()
    next_first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return {
        "enabled": bool(sub and sub.enabled),
        "recipients": list(sub.recipients) if sub else [],
        "last_period": sub.last_period.isoformat() if sub and sub.last_period else None,
        "next_send": next_first.isoformat() if sub and sub.enabled and sub.recipients else None,
        "updated_at": sub.updated_at.isoformat() if sub else None,
    }


def clean_recipients(values: Any) -> list[str]:
    """The addresses, trimmed and without repeats; a ValidationError on `recipients` names each bad one."""
    if isinstance(values, str):
        values = values.replace(",", "\n").splitlines()
    if not isinstance(values, list | tuple):
        raise ValidationError({"recipients": "give a list of e-mail addresses"})
    out, seen, problems = [], set(), []
    for i, value in enumerate(values, 1):
        if not isinstance(value, str):
            problems.append(f"item {i} is not text")
            continue
        address = value.strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            problems.append(f"item {i} ({address[:80]!r}) is not an e-mail address")
            continue
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    if problems:
        raise ValidationError({"recipients": problems})
    if len(out) > MAX_RECIPIENTS:
        raise ValidationError({"recipients": f"at most {MAX_RECIPIENTS} addresses ({len(out)} given)"})
    return out


def save_subscription(actor: Actor, tenant: Tenant, *, recipients: Any, enabled: Any) -> AuditReportSubscription:
    """Set who gets the monthly report (owners only), audited in the same transaction. A new subscription
    starts with the coming month: the first mail is sent on the next first of a month."""
    if not at_least(actor.role_in(tenant), Role.OWNER):
        raise PermissionDenied(f"this needs the owner role in {tenant.slug}")
    if not isinstance(enabled, bool):
        raise ValidationError({"enabled": "must be true or false"})
    addresses = clean_recipients(recipients)
    if enabled and not addresses:
        raise ValidationError({"recipients": "give at least one address, or set enabled to false"})
    with transaction.atomic():
        sub = AuditReportSubscription.objects.select_for_update().filter(tenant=tenant).first()
        before = {"enabled": sub.enabled, "recipients": list(sub.recipients)} if sub else None
        if sub is None:
            last = audit_report.previous_month(timezone.now().date()).start
            sub = AuditReportSubscription(tenant=tenant, last_period=last)
        sub.enabled, sub.recipients = enabled, addresses
        sub.save()
        after = {"enabled": sub.enabled, "recipients": list(sub.recipients)}
        if after != before:
            audit.record(actor, tenant, "auditreport.subscription", sub, before=before, after=after)
    return sub


# Sending -----------------------------------------------------------------------------------------


def _message(
    tenant: Tenant, period: audit_report.Period, report: dict[str, Any], recipients: list[str]
) -> EmailMessage:
    chain = report["chain"]
    score = report["resilience"]["score"]
    lines = [
        f"The audit report of {tenant.name} ({tenant.slug}) for {period.start:%B %Y} "
        f"({period.start} to {period.last_day}, UTC) is attached as PDF, and every audit entry of the month "
        "as CSV.",
        "",
        f"Runs: {report['runs']['total']} ({report['runs']['dry_runs']} dry runs)",
        "Resilience score: " + ("not measured" if score is None else f"{score:.0%} of "
                                f"{report['resilience']['measured']} runs kept their steady state"),
        f"Aborts and stops: {report['aborts']['count']}; halts: {report['halts']['count']}; "
        f"refusals: {report['refusals']['count']}",
        f"Audit entries in the month: {report['audit']['entries']}",
        "Audit chain: " + ("verified" if chain["ok"] else f"BROKEN at entry #{chain['broken_seq']}: {chain['reason']}"),
        f"Head hash (entry #{chain['head_seq']}): {chain['head_hash']}",
        "",
        "You get this because an owner of the tenant subscribed you in Chaosplane (Settings, Reports).",
    ]
    subject = (f"[Chaosplane] Audit report {tenant.slug} {period.start:%Y-%m}"
               + ("" if chain["ok"] else " - AUDIT CHAIN BROKEN"))
    return EmailMessage(subject=subject, body="\n".join(lines), from_email=settings.DEFAULT_FROM_EMAIL, to=recipients)


def send_report(tenant: Tenant, period: audit_report.Period, recipients: list[str]) -> None:
    """Render the tenant's report for `period` (PDF and CSV) and mail it to `recipients`."""
    from . import pdf

    report = audit_report.build(tenant, period)
    document = pdf.render(audit_report.render_html(report, tenant, period, pdf=True))
    table = "".join(audit_report.csv_lines(tenant, period))
    message = _message(tenant, period, report, recipients)
    message.attach(audit_report.filename(tenant, period, "pdf"), document, "application/pdf")
    message.attach(audit_report.filename(tenant, period, "csv"), table, "text/csv")
    message.send(fail_silently=False)


def due(month: date) -> Any:
    return (AuditReportSubscription.objects.filter(enabled=True)
            .filter(Q(last_period__isnull=True) | Q(last_period__lt=month)))


def send_monthly(today: date | None = None) -> int:
    """Each enabled subscription not yet sent the month before `today`'s: its report, once. Returns how
    many were sent. The subscription's row is locked (others skip it) and its last_period moved in the
    transaction that sends, so a second worker or the next hourly run finds nothing to do; a send that
    fails rolls back and is tried again at the next run."""
    period = audit_report.previous_month(today or timezone.now().date())
    sent = 0
    for pk in list(due(period.start).values_list("pk", flat=True)):
        try:
            with transaction.atomic():
                sub = due(period.start).select_for_update(skip_locked=True).select_related("tenant").filter(
                    pk=pk).first()
                if sub is None:
                    continue  # another worker has it, or sent it already
                if sub.recipients:
                    send_report(sub.tenant, period, list(sub.recipients))
                    sent += 1
                sub.last_period = period.start
                sub.save(update_fields=["last_period", "updated_at"])
                audit.record(Actor.system_actor(SYSTEM), sub.tenant, "auditreport.send", sub,
                             after={"period": period.start.isoformat(), "recipients": len(sub.recipients)})
        except Exception:  # noqa: BLE001 - one tenant's failure must not stop the others' reports
            log.exception("the monthly audit report of subscription %s was not sent; next run tries again", pk)
    return sent
