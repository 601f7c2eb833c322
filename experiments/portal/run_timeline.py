"""The timeline of a run, as the geometry of an inline SVG (templates/experiments/run_timeline.html draws
it): one row per target with a bar for each round it held the fault (injected_at to recovered_at, or
now while it is in), the fault window shaded behind, a time axis, and a row of dots per status check.

Computed on the server, so the page needs no script to show it; runs.js swaps in a fresh rendering
while the run is active."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..models import CheckResult, CheckRun, Injection, Run

WIDTH = 960
LEFT = 200  # the labels' column
RIGHT = 16
TOP = 22  # room for the "now" and "deadline" labels
ROW = 24
BAR = 12
AXIS = 36
CHECK_ROW = 22
#: Rows drawn at most (the targets table lists them all); dots per check at most (the newest).
MAX_ROWS = 100
MAX_DOTS = 400
MIN_SPAN = 10.0  # seconds: a run that has just started still gets a readable axis
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
LIVE_STATES = (Injection.State.INJECTING, Injection.State.INJECTED, Injection.State.RECOVERING)


@dataclass
class Bar:
    target: str
    round: int
    state: str
    x: float
    width: float
    title: str


@dataclass
class Row:
    y: float
    label: str
    title: str
    note: str = ""  # for a target that never held the fault: why
    bars: list[Bar] = field(default_factory=list)

    @property
    def bar_y(self) -> float:
        return self.y + (ROW - BAR) / 2

    @property
    def mid_y(self) -> float:
        return self.y + ROW / 2

    @property
    def text_y(self) -> float:
        return self.y + ROW / 2 + 4


@dataclass
class Dot:
    x: float
    ok: bool
    title: str


@dataclass
class CheckRow:
    y: float
    label: str
    title: str
    dots: list[Dot]

    @property
    def mid_y(self) -> float:
        return self.y + CHECK_ROW / 2

    @property
    def text_y(self) -> float:
        return self.y + CHECK_ROW / 2 + 4


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Marker:
    x: float
    label: str


@dataclass
class Timeline:
    width: int
    height: float
    summary: str
    start: datetime
    end: datetime
    plot_left: int
    plot_right: int
    rows_bottom: float
    axis_y: float
    #: The fault window, started_at to finished_at (or the deadline): x and width.
    window: tuple[float, float] | None
    window_title: str
    rows: list[Row]
    checks: list[CheckRow]
    ticks: list[Tick]
    markers: list[Marker]
    empty_text: str
    more_targets: int


def _clock(moment: datetime | None) -> str:
    return f"{moment:%H:%M:%S}" if moment else "—"


def build(run: Run, injections: list[Injection], checks: list[CheckRun], results: list[CheckResult],
          now: datetime) -> Timeline:
    """The timeline of `run` from its rows (the caller queries them once for the page and the table)."""
    active = run.phase not in Run.ENDED
    moments = [run.created_at, run.started_at, run.finished_at]
    moments += [t for i in injections for t in (i.injected_at, i.recovered_at)]
    moments += [r.at for r in results]
    known = [m for m in moments if m is not None]
    start = min(known)
    end = max([*known, now]) if active else max(known)
    if active and run.duration_seconds is not None and not run.one_shot:
        end = max(end, run.deadline)  # a run with a duration: show the whole planned window
    if (end - start).total_seconds() < MIN_SPAN:
        end = start + timedelta(seconds=MIN_SPAN)
    end += (end - start) * 0.02
    span = (end - start).total_seconds()
    plot_left, plot_right = LEFT, WIDTH - RIGHT

    def x(moment: datetime) -> float:
        moment = min(max(moment, start), end)
        return round(plot_left + (moment - start).total_seconds() / span * (plot_right - plot_left), 1)

    # One row per target, in the order they were selected; a bar per round it held the fault.
    by_target: dict[str, Row] = {}
    y = TOP
    for injection in injections:
        key = injection.target_key
        name = injection.target_display or key
        row = by_target.get(key)
        if row is None:
            if len(by_target) >= MAX_ROWS:
                continue
            row = by_target[key] = Row(y=y, label=name if len(name) <= 28 else name[:27] + "…", title=name)
            y += ROW
        if injection.injected_at is None:
            continue
        if injection.recovered_at is not None:
            until, said = injection.recovered_at, f"recovered {_clock(injection.recovered_at)} UTC"
        elif injection.state in LIVE_STATES and active:
            until, said = now, "still in place"
        else:
            until = run.finished_at or now
            said = "nothing to recover" if run.one_shot else f"not recovered ({injection.state})"
        left = x(injection.injected_at)
        row.bars.append(Bar(
            target=name, round=injection.round, state=injection.state, x=left, width=max(x(until) - left, 2.0),
            title=f"{name}, round {injection.round}: {injection.state}; injected {_clock(injection.injected_at)} "
                  f"UTC, {said}" + (f"; error: {injection.error}" if injection.error else ""),
        ))
    for injection in injections:  # targets that never held the fault say why
        row = by_target.get(injection.target_key)
        if row is not None and not row.bars:
            row.note = "dry run: would inject" if injection.state == Injection.State.DRY_RUN else injection.state
    rows = list(by_target.values())
    more = len({i.target_key for i in injections}) - len(rows)
    rows_bottom = max(y, TOP + ROW)  # an empty chart keeps one row for its message
    axis_y = rows_bottom + 4

    per_check: dict[int, list[CheckResult]] = {}
    for result in results:
        per_check.setdefault(result.check_run_id, []).append(result)
    check_rows = []
    cy = axis_y + AXIS
    for check in checks:
        shown = per_check.get(check.pk, [])[-MAX_DOTS:]
        failed = sum(not r.ok for r in shown)
        dots = [Dot(x=x(r.at), ok=r.ok, title=f"{check.name} at {_clock(r.at)} UTC: {'ok' if r.ok else 'failed'}, "
                                               f"{r.latency_ms:.0f} ms" + (f": {r.detail}" if r.detail else ""))
                for r in shown]
        label = f"{check.name} ({check.purpose})"
        check_rows.append(CheckRow(
            y=cy, label=label if len(label) <= 28 else label[:27] + "…", dots=dots,
            title=f"status check {check.name}, {check.purpose} the fault: {check.phase}; "
                  f"{len(shown)} probes shown, {failed} failed",
        ))
        cy += CHECK_ROW

    window, window_title = None, ""
    if run.started_at is not None:
        left, until = x(run.started_at), run.finished_at or run.deadline
        window = (left, max(x(until) - left, 1.0))
        window_title = (f"Fault window: from {_clock(run.started_at)} UTC to "
                        f"{'the end' if run.finished_at else 'the deadline'}, {_clock(until)} UTC")
    markers = []
    if active:
        markers.append(Marker(x(now), "now"))
    if start <= run.deadline <= end and not run.finished_at:
        markers.append(Marker(x(run.deadline), "deadline"))

    bars = sum(len(r.bars) for r in rows)
    held = {r.label for r in rows if r.bars}
    live = sum(1 for i in injections if i.state in LIVE_STATES and i.injected_at and not i.recovered_at)
    probes = sum(len(r.dots) for r in check_rows)
    failed = sum(not d.ok for r in check_rows for d in r.dots)
    summary = (
        f"Timeline of this run from {start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC: "
        f"{len(held)} of {len(rows) + more} targets took the fault ({bars} bars), {live} still in place; "
        + (f"{probes} status-check probes, {failed} failed." if check_rows else "no status checks.")
    )
    if run.dry_run:
        empty = "A dry run: nothing was injected."
    elif run.phase == Run.Phase.REFUSED:
        empty = "The run was refused: nothing was injected."
    elif active:
        empty = "No target has taken the fault yet."
    else:
        empty = "No target took the fault."
    return Timeline(
        width=WIDTH, height=cy + 6, summary=summary, start=start, end=end, plot_left=plot_left,
        plot_right=plot_right, rows_bottom=rows_bottom, axis_y=axis_y, window=window, window_title=window_title,
        rows=rows, checks=check_rows, ticks=_ticks(start, end, x), markers=markers,
        empty_text=empty if not rows else "", more_targets=more,
    )


def _ticks(start: datetime, end: datetime, x: Callable[[datetime], float]) -> list[Tick]:
    span = (end - start).total_seconds()
    step = next((s for s in TICK_STEPS if span / s <= 7), TICK_STEPS[-1])
    first = (int(start.timestamp()) // step + 1) * step
    stamp = "%m-%d %H:%M" if span > 86400 else "%H:%M" if step >= 60 else "%H:%M:%S"
    ticks = []
    moment = datetime.fromtimestamp(first, tz=start.tzinfo)
    while moment <= end:
        position = x(moment)
        if LEFT + 24 <= position <= WIDTH - RIGHT - 24:
            ticks.append(Tick(position, moment.strftime(stamp)))
        moment += timedelta(seconds=step)
    return ticks
