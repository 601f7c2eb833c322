"""A tenant's audit report for a period [from, to): its runs by outcome, kind and environment, the
resilience score (overall and over time), aborts, halts and refusals, every audit entry of the period,
and the whole audit chain verified with its head hash printed, so the report can be compared later.

`build()` is the summary as a plain dict (the JSON format); `entries()` iterates the period's audit
entries in order without loading them all; `csv_lines()` streams them as CSV."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import TruncDay, TruncWeek
from django.http import HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils import timezone

from experiments.models import Event, Run, WorkflowRun
from tenants.audit import verify_chain
from tenants.models import AuditEntry, Tenant

from . import charts, run_report

FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "csv": "text/csv; charset=utf-8",
           "json": "application/json"}
VERSION = 1
DEFAULT_DAYS = 30
MAX_DAYS = 366
#: Longer periods chart the score per week rather than per day.
DAILY_UP_TO_DAYS = 62
#: Aborts, halts and refusals listed in full up to this many each (their counts are always whole).
LIST_LIMIT = 500
#: Audit entries the PDF lists; past it, the PDF says how many more the CSV holds (the HTML lists all).
PDF_ENTRY_LIMIT = 1000
CSV_FIELDS = ("seq", "created_at", "actor_kind", "actor", "action", "object_type", "object_id", "remote_addr",
              "entry_hash", "prev_hash")
REFUSAL_REASONS = {"PolicyRefused": "policy", "SteadyStateFailed": "steady state", "ScheduleRefused": "policy"}


@dataclass(frozen=True)
class Period:
    """Whole UTC days, from `start` up to (not including) `end`."""

    start: date
    end: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end, time.min, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def slug(self) -> str:
        return f"{self.start:%Y%m%d}-{self.last_day:%Y%m%d}"


def _date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError({field: f"{value[:40]!r} is not a date: give it as YYYY-MM-DD"}) from None


def period_from(params: Mapping[str, Any], today: date | None = None) -> Period:
    """The period of a request's `from` and `to` (YYYY-MM-DD, `to` not included); by default the last
    30 days up to and including today. A ValidationError names the field that is wrong."""
    today = today or timezone.now().astimezone(UTC).date()
    to_text, from_text = (params.get("to") or "").strip(), (params.get("from") or "").strip()
    end = _date(to_text, "to") if to_text else today + timedelta(days=1)
    start = _date(from_text, "from") if from_text else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise ValidationError({"from": f"must be before to ({end}): the period is [from, to), so from={start} "
                                       f"&to={start + timedelta(days=1)} is the day {start}"})
    if (end - start).days > MAX_DAYS:
        raise ValidationError({"to": f"the period is {(end - start).days} days; a report covers at most {MAX_DAYS}"})
    return Period(start, end)


def previous_month(today: date) -> Period:
    """The calendar month before the one `today` is in."""
    first = today.replace(day=1)
    return Period((first - timedelta(days=1)).replace(day=1), first)


# The summary -------------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _counts(queryset: QuerySet, *fields: str) -> list[dict[str, Any]]:
    rows = queryset.order_by().values(*fields).annotate(count=Count("id")).order_by("-count", *fields)
    return [dict(r) for r in rows]


def _measured(runs: QuerySet) -> QuerySet:
    """Runs that count towards the score: ended, not dry, with status checks that gave a verdict."""
    return runs.filter(phase__in=Run.ENDED, dry_run=False).exclude(steady_state=Run.SteadyState.NONE)


def _score(held: int, measured: int) -> float | None:
    return round(held / measured, 4) if measured else None


def _resilience(runs: QuerySet, period: Period) -> dict[str, Any]:
    measured = _measured(runs)
    totals = measured.aggregate(measured=Count("id"), held=Count("id", filter=Q(steady_state=Run.SteadyState.HELD)))
    daily = period.days <= DAILY_UP_TO_DAYS
    trunc = (TruncDay if daily else TruncWeek)("created_at", tzinfo=UTC)
    rows = {
        r["bucket"].date(): r
        for r in measured.order_by().annotate(bucket=trunc).values("bucket").annotate(
            measured=Count("id"), held=Count("id", filter=Q(steady_state=Run.SteadyState.HELD)))
    }
    step = timedelta(days=1 if daily else 7)
    bucket = period.start if daily else period.start - timedelta(days=period.start.weekday())
    series = []
    while bucket < period.end:
        row = rows.get(bucket, {"measured": 0, "held": 0})
        series.append({"start": bucket.isoformat(), "measured": row["measured"], "held": row["held"],
                       "score": _score(row["held"], row["measured"])})
        bucket += step
    return {"score": _score(totals["held"], totals["measured"]), "held": totals["held"],
            "measured": totals["measured"], "bucket": "day" if daily else "week", "series": series}


def _name_of(event: Event) -> tuple[str, str, str]:
    """(what, name, id) of the object an event is about."""
    if event.run_id is not None:
        return "run", event.run.experiment_name, str(event.run.uuid)
    if event.workflow_run_id is not None:
        return "workflow run", event.workflow_run.workflow_name, str(event.workflow_run.uuid)
    return event.object_type, "", event.object_id


def _listed(queryset: QuerySet, limit: int = LIST_LIMIT) -> tuple[int, list[Any]]:
    rows = list(queryset[:limit + 1])
    total = len(rows) if len(rows) <= limit else queryset.count()
    return total, rows[:limit]


def _aborts(tenant: Tenant, period: Period) -> dict[str, Any]:
    window = Q(created_at__gte=period.since, created_at__lt=period.until)
    wr_total, wrs = _listed(WorkflowRun.objects.filter(window, tenant=tenant, phase=WorkflowRun.Phase.ABORTED)
                            .order_by("created_at", "id"))
    stops_total, stops = _listed(Event.objects.filter(window, tenant=tenant, reason="Stopped", run__isnull=False)
                                 .select_related("run").order_by("created_at", "id"))
    items = [{"at": _when(w.finished_at or w.created_at), "what": "workflow run", "name": w.workflow_name,
              "id": str(w.uuid), "message": w.message} for w in wrs]
    items += [{"at": _when(e.created_at), "what": "run", "name": e.run.experiment_name, "id": str(e.run.uuid),
               "message": e.message} for e in stops]
    items.sort(key=lambda i: i["at"] or "")
    return {"count": wr_total + stops_total, "workflow_runs": wr_total, "runs_stopped": stops_total, "items": items}


def _halts(tenant: Tenant, period: Period) -> dict[str, Any]:
    entries = AuditEntry.objects.filter(tenant=tenant, action="tenant.halt", created_at__gte=period.since,
                                        created_at__lt=period.until).order_by("seq")
    total, rows = _listed(entries)
    halted = Event.objects.filter(tenant=tenant, reason="Halted", created_at__gte=period.since,
                                  created_at__lt=period.until).count()
    return {"count": total, "runs_halted": halted, "items": [
        {"at": _when(a.created_at), "seq": a.seq, "actor": a.actor_label, "runs": (a.after or {}).get("runs")}
        for a in rows]}


def _refusals(tenant: Tenant, period: Period) -> dict[str, Any]:
    events = (Event.objects.filter(tenant=tenant, reason__in=list(REFUSAL_REASONS), created_at__gte=period.since,
                                   created_at__lt=period.until)
              .select_related("run", "workflow_run").order_by("created_at", "id"))
    total, rows = _listed(events)
    by_kind = {r["reason"]: r["count"] for r in _counts(events, "reason")}
    items = []
    for e in rows:
        what, name, ident = _name_of(e)
        items.append({"at": _when(e.created_at), "kind": REFUSAL_REASONS[e.reason], "reason": e.reason,
                      "what": what, "name": name, "id": ident, "message": e.message})
    return {"count": total, "policy": by_kind.get("PolicyRefused", 0) + by_kind.get("ScheduleRefused", 0),
            "steady_state": by_kind.get("SteadyStateFailed", 0), "items": items}


def chain_of(tenant: Tenant) -> dict[str, Any]:
    """The whole chain verified (not only the period: a change anywhere breaks every later link)."""
    report = verify_chain(tenant)
    head = AuditEntry.objects.filter(tenant=tenant).order_by("-seq").values("seq", "entry_hash").first()
    return {
        "ok": report.ok,
        "verified_entries": report.entries,
        "head_seq": head["seq"] if head else 0,
        "head_hash": head["entry_hash"] if head else report.head_hash,
        "last_verified_hash": report.head_hash,
        "broken_seq": report.broken_seq,
        "reason": report.reason,
        "verdict": "ok" if report.ok else f"broken at #{report.broken_seq}",
    }


def build(tenant: Tenant, period: Period) -> dict[str, Any]:
    """The report's summary (everything but the entries themselves) as JSON-serialisable values."""
    runs = Run.objects.filter(tenant=tenant, created_at__gte=period.since, created_at__lt=period.until)
    wrs = WorkflowRun.objects.filter(tenant=tenant, created_at__gte=period.since, created_at__lt=period.until)
    entries = AuditEntry.objects.filter(tenant=tenant, created_at__gte=period.since, created_at__lt=period.until)
    seqs = entries.order_by().aggregate(count=Count("id"), first=Min("seq"), last=Max("seq"))
    run_totals = runs.order_by().aggregate(total=Count("id"), dry=Count("id", filter=Q(dry_run=True)),
                                           ended=Count("id", filter=Q(phase__in=Run.ENDED)))
    return {
        "report": "audit",
        "version": VERSION,
        "generated_at": _when(timezone.now()),
        "tenant": tenant.slug,
        "tenant_name": tenant.name,
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat(), "days": period.days,
                   "last_day": period.last_day.isoformat()},
        "runs": {
            "total": run_totals["total"], "ended": run_totals["ended"], "dry_runs": run_totals["dry"],
            "by_outcome": [{"phase": r["phase"], "steady_state": r["steady_state"] or "none", "count": r["count"]}
                           for r in _counts(runs, "phase", "steady_state")],
            "by_kind": _counts(runs, "kind"),
            "by_environment": [{"environment": r["environment_name"], "count": r["count"]}
                               for r in _counts(runs, "environment_name")],
        },
        "workflow_runs": {"total": wrs.count(), "by_phase": _counts(wrs, "phase")},
        "resilience": _resilience(runs, period),
        "aborts": _aborts(tenant, period),
        "halts": _halts(tenant, period),
        "refusals": _refusals(tenant, period),
        "audit": {"entries": seqs["count"], "first_seq": seqs["first"], "last_seq": seqs["last"]},
        "chain": chain_of(tenant),
    }


# The entries -------------------------------------------------------------------------------------


def entries(tenant: Tenant, period: Period, limit: int | None = None) -> Iterator[AuditEntry]:
    """The period's audit entries in chain order, fetched in chunks."""
    queryset = AuditEntry.objects.filter(tenant=tenant, created_at__gte=period.since,
                                         created_at__lt=period.until).order_by("seq")
    if limit is not None:
        queryset = queryset[:limit]
    return queryset.iterator(chunk_size=2000)


def csv_row(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.seq, entry.created_at.isoformat(), entry.actor_kind, entry.actor_label, entry.action,
            entry.object_type, entry.object_id, entry.remote_addr or "", entry.entry_hash, entry.prev_hash)


def csv_lines(tenant: Tenant, period: Period) -> Iterator[str]:
    """The CSV, a line at a time: a header, then one row per entry of the period."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_FIELDS)
    yield take()
    batch = 0
    for entry in entries(tenant, period):
        writer.writerow(csv_row(entry))
        batch += 1
        if batch == 500:
            batch = 0
            yield take()
    yield take()


# Formats -----------------------------------------------------------------------------------------


def chart_image(report: dict[str, Any]) -> charts.Image:
    resilience = report["resilience"]
    labels = [(p["start"][5:] if resilience["bucket"] == "day" else f"wk {p['start'][5:]}", p["score"],
               p["measured"]) for p in resilience["series"]]
    overall = "no measured run" if resilience["score"] is None else f"{resilience['score']:.0%} overall"
    return charts.image(charts.score(labels), f"Resilience score per {resilience['bucket']}: {overall}")


def render_html(report: dict[str, Any], tenant: Tenant, period: Period, *, pdf: bool = False) -> str:
    """The report as one self-contained HTML document (the PDF lists at most PDF_ENTRY_LIMIT entries)."""
    limit = PDF_ENTRY_LIMIT if pdf else None
    rows = list(entries(tenant, period, limit))
    context = {"r": run_report.readable(report), "score_chart": chart_image(report), "entries": rows,
               "entries_left": max(report["audit"]["entries"] - len(rows), 0)}
    return render_to_string("reports/audit_report.html", context)


def filename(tenant: Tenant, period: Period, fmt: str) -> str:
    return f"audit-report-{tenant.slug}-{period.slug()}.{fmt}"


def chain_headers(response: HttpResponse | StreamingHttpResponse, chain: dict[str, Any]) -> None:
    response["X-Chaosplane-Chain"] = chain["verdict"]
    response["X-Chaosplane-Head-Hash"] = chain["head_hash"]
    response["X-Chaosplane-Head-Seq"] = str(chain["head_seq"])


def download(tenant: Tenant, period: Period, fmt: str) -> HttpResponse | StreamingHttpResponse:
    """The report as an HTTP response in `fmt` (html, pdf, csv or json), the chain's verdict in its headers."""
    if fmt == "csv":
        chain = chain_of(tenant)
        response: HttpResponse | StreamingHttpResponse = StreamingHttpResponse(
            csv_lines(tenant, period), content_type=FORMATS["csv"])
        response["Content-Disposition"] = f'attachment; filename="{filename(tenant, period, "csv")}"'
        chain_headers(response, chain)
        return response
    report = build(tenant, period)
    if fmt == "json":
        response = HttpResponse(json.dumps(report, indent=2), content_type=FORMATS["json"])
    elif fmt == "pdf":
        from . import pdf

        response = HttpResponse(pdf.render(render_html(report, tenant, period, pdf=True)),
                                content_type=FORMATS["pdf"])
        response["Content-Disposition"] = f'attachment; filename="{filename(tenant, period, "pdf")}"'
    else:
        response = HttpResponse(render_html(report, tenant, period), content_type=FORMATS["html"])
    if fmt != "pdf":
        response["Content-Disposition"] = f'inline; filename="{filename(tenant, period, fmt)}"'
    chain_headers(response, report["chain"])
    return response
