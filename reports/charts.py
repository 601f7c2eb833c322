"""The reports' charts as SVG text, drawn here in pure Python (no JavaScript, no plotting library), and
embedded as data: URI images so the same markup renders in a browser, in print and in WeasyPrint's PDF.

Every chart is a function of plain values (datetimes, numbers, strings) returning an SVG document;
`image()` turns one into the src and alt of an <img>."""
from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

WIDTH = 720
LABEL_WIDTH = 170  # the left margin where a timeline names its targets
AXIS_HEIGHT = 22
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e4e7eb"
WINDOW = "#fde8c8"  # the fault window, shaded behind every chart
BAR = "#c2410c"
BAR_OPEN = "#b91c1c"  # a target whose fault was never recovered
OK = "#15803d"
FAIL = "#b91c1c"
LINE = "#2563eb"


@dataclass(frozen=True)
class Bar:
    """One target on the timeline: from `start` to `end` (None: never recovered)."""

    label: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Probe:
    """One status-check result."""

    at: datetime
    ok: bool
    latency_ms: float


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    svg: str


def image(svg: str, alt: str) -> Image:
    """The chart as an <img> source (data:image/svg+xml;base64,...) and its text alternative."""
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Image(src=f"data:image/svg+xml;base64,{encoded}", alt=alt, svg=svg)


class _Scale:
    """Time to x within [left, right]."""

    def __init__(self, start: datetime, end: datetime, left: float, right: float) -> None:
        if end <= start:
            end = start + timedelta(seconds=1)
        self.start, self.end, self.left, self.right = start, end, left, right
        self.span = (end - start).total_seconds()

    def x(self, moment: datetime) -> float:
        share = (moment - self.start).total_seconds() / self.span
        return round(self.left + min(max(share, 0.0), 1.0) * (self.right - self.left), 2)


def _svg(height: float, body: list[str], title: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height:.0f}' "
        f"viewBox='0 0 {WIDTH} {height:.0f}' {FONT} font-size='11'>"
        f"<title>{escape(title)}</title>"
        f"<rect x='0' y='0' width='{WIDTH}' height='{height:.0f}' fill='#ffffff'/>"
        + "".join(body) + "</svg>"
    )


TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400,
              604800)


def _tick_step(span_seconds: float) -> float:
    for step in TICK_STEPS:
        if span_seconds / step <= 8:
            return float(step)
    return 2592000.0


def _time_label(moment: datetime, span_seconds: float) -> str:
    if span_seconds > 2 * 86400:
        return moment.strftime("%m-%d")
    if span_seconds > 600:
        return moment.strftime("%H:%M")
    if span_seconds < 5:
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 100000}"
    return moment.strftime("%H:%M:%S")


def _time_axis(scale: _Scale, top: float, bottom: float) -> list[str]:
    """Vertical grid lines with their times under the plot (UTC)."""
    step = _tick_step(scale.span)
    origin = scale.start.timestamp()
    first = origin - origin % step + (step if origin % step else 0)
    out, t = [], first
    while t <= scale.end.timestamp() + 1e-6:
        moment = datetime.fromtimestamp(t, tz=scale.start.tzinfo)
        x = scale.x(moment)
        out.append(f"<line x1='{x}' y1='{top}' x2='{x}' y2='{bottom}' stroke='{GRID}'/>")
        out.append(f"<text x='{x}' y='{bottom + 14}' fill='{MUTED}' text-anchor='middle'>"
                   f"{_time_label(moment, scale.span)}</text>")
        t += step
    return out


def _window(scale: _Scale, window: tuple[datetime, datetime] | None, top: float, bottom: float) -> list[str]:
    if window is None:
        return []
    x1, x2 = scale.x(window[0]), scale.x(window[1])
    return [f"<rect class='fault-window' x='{x1}' y='{top}' width='{max(x2 - x1, 1.0)}' height='{bottom - top}' "
            f"fill='{WINDOW}'/>"]


def _span(points: Sequence[datetime], window: tuple[datetime, datetime] | None) -> tuple[datetime, datetime]:
    moments = list(points) + (list(window) if window else [])
    start, end = min(moments), max(moments)
    pad = max((end - start) * 0.03, timedelta(milliseconds=50))
    return start - pad, end + pad


def timeline(bars: Sequence[Bar], window: tuple[datetime, datetime] | None, *, now: datetime) -> str:
    """One bar per target, from when the fault went in to when it came out; the fault window shaded.
    A bar never closed runs to `now` in red, open-ended."""
    title = f"Timeline of {len(bars)} targets"
    if not bars:
        return _svg(40, [f"<text x='{WIDTH / 2}' y='24' fill='{MUTED}' text-anchor='middle'>"
                         "No target took the fault.</text>"], title)
    row = max(3.0, min(18.0, 540.0 / len(bars)))
    labelled = row >= 9
    left = LABEL_WIDTH if labelled else 10.0
    top, height = 8.0, 8.0 + row * len(bars)
    scale = _Scale(*_span([b.start for b in bars] + [b.end or now for b in bars], window), left, WIDTH - 10)
    body = _window(scale, window, top, height) + _time_axis(scale, top, height)
    for i, bar in enumerate(bars):
        y = top + i * row
        x1, x2 = scale.x(bar.start), scale.x(bar.end or now)
        colour = BAR if bar.end is not None else BAR_OPEN
        state = "recovered" if bar.end is not None else "not-recovered"
        body.append(f"<rect class='bar {state}' x='{x1}' y='{y + row * 0.15:.2f}' width='{max(x2 - x1, 2.0):.2f}' "
                    f"height='{row * 0.7:.2f}' fill='{colour}'><title>{escape(bar.label)}</title></rect>")
        if labelled:
            label = bar.label if len(bar.label) <= 28 else bar.label[:27] + "…"
            body.append(f"<text x='{left - 6}' y='{y + row * 0.5 + 4:.2f}' fill='{INK}' text-anchor='end'>"
                        f"{escape(label)}</text>")
    return _svg(height + AXIS_HEIGHT, body, title)


def check_results(name: str, probes: Sequence[Probe], window: tuple[datetime, datetime] | None) -> str:
    """A status check's probes over time: latency as a line, each probe a dot (green passed, red failed)
    at its latency; the fault window shaded."""
    title = f"Status check {name}: {len(probes)} probes"
    if not probes:
        return _svg(40, [f"<text x='{WIDTH / 2}' y='24' fill='{MUTED}' text-anchor='middle'>"
                         "No probe recorded.</text>"], title)
    top, bottom, left = 10.0, 130.0, 56.0
    scale = _Scale(*_span([p.at for p in probes], window), left, WIDTH - 10)
    ceiling = max(max(p.latency_ms for p in probes), 1.0) * 1.15

    def y(ms: float) -> float:
        return round(bottom - (ms / ceiling) * (bottom - top), 2)

    body = _window(scale, window, top, bottom) + _time_axis(scale, top, bottom)
    for fraction in (0.0, 0.5, 1.0):
        ms = ceiling * fraction
        body.append(f"<line x1='{left}' y1='{y(ms)}' x2='{WIDTH - 10}' y2='{y(ms)}' stroke='{GRID}'/>")
        text = f"{ms:.0f}" if ceiling >= 20 else f"{ms:.1f}"
        body.append(f"<text x='{left - 6}' y='{y(ms) + 4}' fill='{MUTED}' text-anchor='end'>{text} ms</text>")
    points = " ".join(f"{scale.x(p.at)},{y(p.latency_ms)}" for p in probes)
    body.append(f"<polyline class='latency' points='{points}' fill='none' stroke='{LINE}' stroke-width='1.5'/>")
    for p in probes:
        state = "ok" if p.ok else "fail"
        body.append(f"<circle class='probe {state}' cx='{scale.x(p.at)}' cy='{y(p.latency_ms)}' r='3.5' "
                    f"fill='{OK if p.ok else FAIL}'/>")
    return _svg(bottom + AXIS_HEIGHT, body, title)


def score(points: Sequence[tuple[str, float | None, int]]) -> str:
    """The resilience score per period (label, share 0..1 or None when nothing was measured, runs):
    one column each, its height the share of runs whose steady state held."""
    title = "Resilience score over time"
    if not points:
        return _svg(40, [f"<text x='{WIDTH / 2}' y='24' fill='{MUTED}' text-anchor='middle'>"
                         "No run in this period.</text>"], title)
    top, bottom, left = 10.0, 150.0, 44.0
    slot = (WIDTH - 10 - left) / len(points)
    body = []
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * (bottom - top)
        body.append(f"<line x1='{left}' y1='{y}' x2='{WIDTH - 10}' y2='{y}' stroke='{GRID}'/>")
        body.append(f"<text x='{left - 6}' y='{y + 4}' fill='{MUTED}' text-anchor='end'>{fraction:.0%}</text>")
    every = max(1, len(points) // 12)
    for i, (label, share, runs) in enumerate(points):
        x = left + i * slot
        if share is not None:
            h = max(share * (bottom - top), 1.0)
            colour = OK if share >= 0.9 else (BAR if share >= 0.5 else FAIL)
            body.append(f"<rect class='score' x='{x + slot * 0.15:.2f}' y='{bottom - h:.2f}' "
                        f"width='{slot * 0.7:.2f}' height='{h:.2f}' fill='{colour}'>"
                        f"<title>{escape(label)}: {share:.0%} of {runs}</title></rect>")
        else:
            body.append(f"<text x='{x + slot / 2:.2f}' y='{bottom - 4}' fill='{MUTED}' text-anchor='middle'>–</text>")
        if i % every == 0:
            body.append(f"<text x='{x + slot / 2:.2f}' y='{bottom + 14}' fill='{MUTED}' text-anchor='middle'>"
                        f"{escape(label)}</text>")
    return _svg(bottom + AXIS_HEIGHT, body, title)
