"""A run's report: who started it and how, the fault, the policy's decisions, the targets with their
times, the status checks' probes, the events and the outcome, as one plain dict (the JSON format is
this dict), rendered to HTML with SVG charts as images, and to PDF from that HTML."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone

from experiments.models import CheckResult, CheckRun, Event, Injection, Run
from tenants.models import AuditEntry

from . import charts

#: Format -> media type of a run report.
FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf", "json": "application/json"}
VERSION = 1

State = Injection.State
#: Final injection states in which nothing is left on the target.
CLEAN_STATES = {State.RECOVERED, State.DRY_RUN, State.SKIPPED, State.FAILED}
STEADY_STATE_TEXT = {
    Run.SteadyState.HELD: "the steady state held before, during and after the run",
    Run.SteadyState.BROKEN: "the steady state did not hold during the run",
    Run.SteadyState.NOT_RESTORED: "the steady state did not come back after the run",
    Run.SteadyState.NONE: "no status checks: the steady state was not measured",
}


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _origin(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": run.origin, "schedule": None, "workflow_run": None}
    if run.schedule is not None:
        out["schedule"] = {"id": str(run.schedule.uuid), "name": run.schedule.name}
    if run.workflow_node is not None:
        wr = run.workflow_node.workflow_run
        out["workflow_run"] = {"id": str(wr.uuid), "workflow": wr.workflow_name, "node": run.workflow_node.path,
                               "phase": wr.phase}
    return out


def _refusals(text: str) -> list[dict[str, str]]:
    """'policy max-targets: ...; policy windows: ...' as [{rule, message}]."""
    out = []
    for part in text.split("; policy "):
        rule, _, message = part.removeprefix("policy ").partition(": ")
        out.append({"rule": rule.strip(), "message": message.strip()})
    return out


def _policy(run: Run, events: list[Event]) -> dict[str, Any]:
    """What the blast-radius policy decided, from what the lifecycle recorded: PolicyRefused events (at the
    start, and again once the targets were chosen), the run's message, and SteadyStateFailed refusals."""
    refused = [e for e in events if e.reason == "PolicyRefused"]
    steady = [e for e in events if e.reason == "SteadyStateFailed"]
    if refused:
        verdict = "refused"
        text = "refused by the policy: " + "; ".join(e.message for e in refused)
    elif steady:
        verdict = "refused"
        text = "refused before any fault: the steady state did not hold"
    elif run.dry_run:
        verdict = "not-checked"
        text = "a dry run: nothing was injected, so the policy's limits were not applied"
    elif run.phase == Run.Phase.PENDING:
        verdict = "pending"
        text = "checked at the start; checked again once the targets are chosen"
    else:
        verdict = "allowed"
        text = "allowed: checked at the start and again on the chosen targets, no rule refused the run"
    return {
        "verdict": verdict,
        "summary": text,
        "refusals": [dict(r, at=_when(e.created_at)) for e in refused for r in _refusals(e.message)],
        "steady_state_refusals": [{"at": _when(e.created_at), "message": e.message} for e in steady],
    }


def _outcome(run: Run, injections: list[Injection], events: list[Event]) -> dict[str, Any]:
    live = [i for i in injections if i.state in Injection.LIVE or i.state == State.PENDING]
    failed_recoveries = sum(1 for e in events if e.reason == "RecoveryFailed")
    injected = [i for i in injections if i.injected_at is not None]
    if not run.archived:
        recovery, clean = "in progress", None
    elif live:
        recovery, clean = f"{len(live)} of {len(injections)} targets were not recovered", False
    elif failed_recoveries:
        recovery, clean = f"recovered, after {failed_recoveries} failed recovery attempts", False
    elif not injected:
        recovery, clean = "nothing was injected, so nothing needed recovering", True
    else:
        recovery, clean = f"all {len(injected)} injected targets recovered", True
    held = {Run.SteadyState.HELD: True, Run.SteadyState.BROKEN: False,
            Run.SteadyState.NOT_RESTORED: False}.get(run.steady_state)
    return {
        "phase": run.phase,
        "ended": run.archived,
        "message": run.message,
        "steady_state": run.steady_state or "none",
        "steady_state_held": held,
        "steady_state_text": STEADY_STATE_TEXT.get(run.steady_state, run.steady_state),
        "recovered_cleanly": clean,
        "recovery": recovery,
        "failed_recovery_attempts": failed_recoveries,
        "targets": len({i.target_key for i in injections}),
        "targets_failed": sum(1 for i in injections if i.state == State.FAILED),
    }


def _window(run: Run, injections: list[Injection]) -> dict[str, str | None]:
    """When faults were in place: the first injection to the last recovery (or the run's own times)."""
    ins = [i.injected_at for i in injections if i.injected_at]
    outs = [i.recovered_at for i in injections if i.recovered_at]
    start = min(ins) if ins else run.started_at
    end = max(outs) if outs and not any(i.state in Injection.LIVE for i in injections) else run.finished_at
    return {"start": _when(start), "end": _when(end)}


def build(run: Run) -> dict[str, Any]:
    """The report of `run` (any phase; an active run's report says so), as JSON-serialisable values."""
    run = (Run.objects.select_related("created_by", "schedule", "workflow_node__workflow_run", "tenant")
           .get(pk=run.pk))
    injections = list(Injection.objects.filter(run=run).order_by("round", "id"))
    checks = list(CheckRun.objects.filter(run=run).order_by("created_at", "id"))
    results: dict[int, list[CheckResult]] = {c.pk: [] for c in checks}
    for result in CheckResult.objects.filter(check_run__in=checks).order_by("at", "id"):
        results[result.check_run_id].append(result)
    events = list(Event.objects.filter(run=run).order_by("created_at", "id"))
    audit = list(AuditEntry.objects.filter(tenant=run.tenant, object_type="run", object_id=str(run.uuid))
                 .order_by("seq"))
    start_entry = next((a for a in audit if a.action == "run.start"), None)
    spec = run.spec or {}
    return {
        "report": "run",
        "version": VERSION,
        "generated_at": _when(timezone.now()),
        "tenant": run.tenant.slug,
        "run": {
            "id": str(run.uuid),
            "experiment": run.experiment_name,
            "description": spec.get("description", ""),
            "kind": run.kind,
            "action": run.action,
            "namespace": spec.get("namespace", ""),
            "spec": spec.get("spec", {}),
            "environment": run.environment_name,
            "dry_run": run.dry_run,
            "one_shot": run.one_shot,
            "seed": run.seed,
            "candidates": run.candidates,
            "duration_seconds": run.duration_seconds,
            "created_at": _when(run.created_at),
            "started_at": _when(run.started_at),
            "finished_at": _when(run.finished_at),
            "deadline": _when(run.deadline),
        },
        "started_by": {
            "user": run.created_by.get_username() if run.created_by else None,
            "actor": start_entry.actor_label if start_entry else (run.created_by.get_username()
                                                                   if run.created_by else None),
            "actor_kind": start_entry.actor_kind if start_entry else None,
            "remote_addr": start_entry.remote_addr if start_entry else None,
            "origin": _origin(run),
        },
        "policy": _policy(run, events),
        "fault_window": _window(run, injections),
        "targets": [{
            "target": i.target_display or i.target_key, "key": i.target_key, "namespace": i.target_namespace,
            "round": i.round, "state": i.state, "injected_at": _when(i.injected_at),
            "recovered_at": _when(i.recovered_at), "attempts": i.attempts, "detail": i.detail, "error": i.error,
        } for i in injections],
        "checks": [{
            "id": str(c.uuid), "name": c.name, "purpose": c.purpose, "abort": c.abort, "phase": c.phase,
            "message": c.message, "probes": c.probes, "spec": c.spec,
            "started_at": _when(c.created_at), "finished_at": _when(c.finished_at),
            "results": [{"at": _when(r.at), "ok": r.ok, "latency_ms": r.latency_ms, "detail": r.detail}
                        for r in results[c.pk]],
        } for c in checks],
        "status_checks": [{"name": c.get("name", ""), "abort": bool(c.get("abort"))}
                          for c in spec.get("status_checks") or [] if isinstance(c, dict)],
        "events": [{"at": _when(e.created_at), "type": e.type, "reason": e.reason, "message": e.message,
                    "object_type": e.object_type} for e in events],
        "audit": [{"seq": a.seq, "at": _when(a.created_at), "actor": a.actor_label, "actor_kind": a.actor_kind,
                   "action": a.action, "after": a.after, "entry_hash": a.entry_hash} for a in audit],
        "outcome": _outcome(run, injections, events),
    }


# Charts ------------------------------------------------------------------------------------------


def _fault_window(report: dict[str, Any], now: datetime) -> tuple[datetime, datetime] | None:
    start = _parse(report["fault_window"]["start"])
    if start is None:
        return None
    return start, _parse(report["fault_window"]["end"]) or now


def chart_images(report: dict[str, Any]) -> dict[str, Any]:
    """The timeline and one chart per status check, as <img> sources (data:image/svg+xml)."""
    now = _parse(report["generated_at"]) or timezone.now()
    window = _fault_window(report, now)
    bars = [charts.Bar(label=t["target"], start=_parse(t["injected_at"]), end=_parse(t["recovered_at"]))
            for t in report["targets"] if t["injected_at"]]
    timeline = charts.image(
        charts.timeline(bars, window, now=now),
        f"Timeline: {len(bars)} targets from injection to recovery, the fault window shaded",
    )
    checks = []
    for check in report["checks"]:
        probes = [charts.Probe(at=_parse(r["at"]), ok=r["ok"], latency_ms=r["latency_ms"]) for r in check["results"]]
        failed = sum(1 for p in probes if not p.ok)
        checks.append({
            "check": check,
            "image": charts.image(
                charts.check_results(check["name"], probes, window),
                f"Status check {check['name']} ({check['purpose']}): {len(probes)} probes, {failed} failed, "
                "latency over time with the fault window shaded",
            ),
        })
    return {"timeline": timeline, "checks": checks}


# Formats -----------------------------------------------------------------------------------------


#: Keys whose values are ISO times; pages show them shorter ("2026-11-27 01:44:18.856").
TIME_KEYS = {"at", "start", "end", "generated_at", "created_at", "started_at", "finished_at", "deadline",
             "injected_at", "recovered_at"}


def readable(value: Any) -> Any:
    """A copy of a report with its ISO times as people read them (UTC, to the millisecond)."""
    if isinstance(value, dict):
        return {k: _short(v) if k in TIME_KEYS and isinstance(v, str) else readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value


def _short(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def render_html(report: dict[str, Any], *, standalone: bool = True) -> str:
    """The report as one HTML document (its CSS inline, its charts data: images), or the fragment a
    portal page wraps (`standalone=False`)."""
    context = {"r": readable(report), "charts": chart_images(report),
               "spec_text": json.dumps(report["run"]["spec"], indent=2, sort_keys=True)}
    name = "reports/run_report.html" if standalone else "reports/run_report_body.html"
    return render_to_string(name, context)


def filename(report: dict[str, Any], fmt: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in report["run"]["experiment"])[:80]
    return f"run-report-{safe}-{report['run']['id'][:8]}.{fmt}"


def download(report: dict[str, Any], fmt: str) -> HttpResponse:
    """The report as an HTTP response in `fmt` (html, pdf or json)."""
    if fmt == "json":
        response = HttpResponse(json.dumps(report, indent=2), content_type=FORMATS["json"])
    elif fmt == "pdf":
        from . import pdf

        response = HttpResponse(pdf.render(render_html(report)), content_type=FORMATS["pdf"])
        response["Content-Disposition"] = f'attachment; filename="{filename(report, "pdf")}"'
        return response
    else:
        response = HttpResponse(render_html(report), content_type=FORMATS["html"])
    response["Content-Disposition"] = f'inline; filename="{filename(report, fmt)}"'
    return response
