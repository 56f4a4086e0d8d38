"""Inline SVG charts drawn by our own small code: no JavaScript, no network, deterministic text.

Every number is formatted with a fixed precision and every label goes through ``escape``, so the
same input gives the same bytes and a hostile label stays text. Charts carry a ``<title>`` and an
``aria-label`` so the tagged PDF and screen readers have a text alternative.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from evidence.clock import parse_timestamp
from evidence.render.interface import ASSET_BASE

WIDTH = 640
HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 24, 34
#: Longer series are reduced to min/max per bucket, which keeps spikes visible.
MAX_POINTS = 480

_INK = "#1f2a44"
_GRID = "#d9dde5"
_LINE = "#1f5fbf"
_MARKER = "#b3261e"
_PALETTE = ("#1f5fbf", "#2e8540", "#b36b00", "#6b3fa0", "#00838f", "#8d6e63")


@dataclass(frozen=True)
class Marker:
    """A vertical line at an instant, e.g. a release (deployment write)."""

    at: str  # ISO 8601
    label: str


def _instant(text: str) -> float | None:
    """Seconds since the epoch, or None for a value that is not a timestamp (it is skipped)."""
    try:
        return parse_timestamp(str(text)).timestamp()
    except (ValueError, TypeError):
        return None


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value:
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def _fmt_value(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _downsample(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    per_bucket = math.ceil(len(points) / (MAX_POINTS // 2))
    out: list[tuple[float, float]] = []
    for start in range(0, len(points), per_bucket):
        bucket = points[start : start + per_bucket]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        out.extend(sorted({low, high}))
    return out


def _svg_open(label: str, height: int = HEIGHT) -> str:
    text = escape(label)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{text}" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'font-family="Report Sans, DejaVu Sans, sans-serif" font-size="9">'
        f"<title>{text}</title>"
    )


def _time_axis(start: datetime, end: datetime, height: int) -> tuple[list[str], float, float]:
    """Ticks at the window start, middle and end; returns SVG parts, t0 and span in seconds."""
    t0 = start.timestamp()
    span = max(end.timestamp() - t0, 1.0)
    parts: list[str] = []
    plot_w = WIDTH - _LEFT - _RIGHT
    for fraction in (0.0, 0.5, 1.0):
        x = _LEFT + fraction * plot_w
        instant = datetime.fromtimestamp(t0 + fraction * span, tz=start.tzinfo)
        anchor = "start" if fraction == 0 else "end" if fraction == 1 else "middle"
        parts.append(
            f'<line x1="{_num(x)}" y1="{_TOP}" x2="{_num(x)}" y2="{height - _BOTTOM}" stroke="{_GRID}"/>'
            f'<text x="{_num(x)}" y="{height - _BOTTOM + 14}" text-anchor="{anchor}" fill="{_INK}">'
            f"{instant.strftime('%Y-%m-%d %H:%M')}</text>"
        )
    return parts, t0, span


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str,
    start: str,
    end: str,
    markers: Sequence[Marker] = (),
) -> Markup:
    """A time series over the window [start, end], with optional release markers."""
    window_start, window_end = parse_timestamp(start), parse_timestamp(end)
    series = sorted(
        (t, float(v))
        for t, v in ((_instant(ts), v) for ts, v in points)
        if t is not None and v is not None and math.isfinite(float(v))
    )
    parts = [_svg_open(f"{title} ({unit})" if unit else title)]
    axis, t0, span = _time_axis(window_start, window_end, HEIGHT)
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    top = _nice_max(max((v for _, v in series), default=0.0))
    for fraction in (0.0, 0.5, 1.0):
        y = HEIGHT - _BOTTOM - fraction * plot_h
        parts.append(
            f'<line x1="{_LEFT}" y1="{_num(y)}" x2="{WIDTH - _RIGHT}" y2="{_num(y)}" stroke="{_GRID}"/>'
            f'<text x="{_LEFT - 4}" y="{_num(y + 3)}" text-anchor="end" fill="{_INK}">'
            f"{escape(_fmt_value(top * fraction))}</text>"
        )
    parts.extend(axis)
    parts.append(
        f'<text x="{_LEFT}" y="14" font-weight="bold" fill="{_INK}">{escape(title)}</text>'
        f'<text x="{WIDTH - _RIGHT}" y="14" text-anchor="end" fill="{_INK}">{escape(unit)}</text>'
    )

    def x_of(t: float) -> float:
        return _LEFT + min(max((t - t0) / span, 0.0), 1.0) * plot_w

    def y_of(v: float) -> float:
        return HEIGHT - _BOTTOM - min(max(v / top, 0.0), 1.0) * plot_h

    # Labels sit on three staggered rows so markers close together stay readable; markers at
    # the same x share one line and one label.
    placed: dict[str, list[str]] = {}
    for marker in sorted(markers, key=lambda m: (m.at, m.label)):
        at = _instant(marker.at)
        if at is None:
            continue
        x_text = _num(x_of(at))
        labels = placed.setdefault(x_text, [])
        if marker.label[:40] not in labels:
            labels.append(marker.label[:40])
    for i, (x_text, labels) in enumerate(placed.items()):
        x = float(x_text)
        label = ", ".join(labels)
        anchor = "end" if x > WIDTH - _RIGHT - 80 else "start"
        dx = -2 if anchor == "end" else 2
        parts.append(
            f'<line x1="{x_text}" y1="{_TOP}" x2="{x_text}" y2="{HEIGHT - _BOTTOM}" '
            f'stroke="{_MARKER}" stroke-dasharray="3,2"/>'
            f'<text x="{_num(x + dx)}" y="{_TOP + 9 + (i % 3) * 10}" text-anchor="{anchor}" '
            f'fill="{_MARKER}" font-size="7.5">{escape(label)}</text>'
        )
    reduced = _downsample(series)
    if len(reduced) == 1:
        t, v = reduced[0]
        parts.append(f'<circle cx="{_num(x_of(t))}" cy="{_num(y_of(v))}" r="2" fill="{_LINE}"/>')
    elif reduced:
        coords = " ".join(f"{_num(x_of(t))},{_num(y_of(v))}" for t, v in reduced)
        parts.append(f'<polyline fill="none" stroke="{_LINE}" stroke-width="1.5" points="{coords}"/>')
    else:
        parts.append(
            f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle" fill="{_INK}">'
            "no data points in the window</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated label above is escaped


@dataclass(frozen=True)
class Bar:
    """One lane segment: which model a deployment served, with what share of traffic, when."""

    lane: str
    start: str
    end: str | None  # None: still serving at the end of the window
    label: str  # "" when the model version is not recorded (the row's basis says why)
    percent: float | None  # None when the traffic share is not recorded: never drawn as 0%


#: Average advance of a 9 px DejaVu Sans glyph, for fitting labels into bars without measuring.
_CHAR_W = 5.6
_UNKNOWN = "#8a8f99"


def _fit(text: str, width: float) -> str:
    """``text`` cut (with an ellipsis) to what fits in ``width`` px; "" when not even 3 glyphs fit."""
    room = int(width // _CHAR_W)
    if room >= len(text):
        return text
    if room < 3:
        return ""
    return text[: room - 1] + "…"


def timeline_chart(bars: Sequence[Bar], *, title: str, start: str, end: str) -> Markup:
    """Serving timeline: one lane per endpoint/deployment, bars shaded by traffic share.

    A bar's label is cut to the bar's width (the full label is in the serving timeline CSV), so
    neighbouring segments never print over each other.
    """
    lanes = sorted({b.lane for b in bars})
    lane_h = 22
    height = _TOP + _BOTTOM + max(len(lanes), 1) * lane_h
    window_start, window_end = parse_timestamp(start), parse_timestamp(end)
    parts = [_svg_open(title, height)]
    axis, t0, span = _time_axis(window_start, window_end, height)
    parts.extend(axis)
    parts.append(f'<text x="{_LEFT}" y="14" font-weight="bold" fill="{_INK}">{escape(title)}</text>')
    plot_w = WIDTH - _LEFT - _RIGHT
    label_w = 172
    left = _LEFT + label_w
    inner_w = plot_w - label_w

    def x_of(t: float) -> float:
        return left + min(max((t - t0) / span, 0.0), 1.0) * inner_w

    for i, lane in enumerate(lanes):
        y = _TOP + i * lane_h
        parts.append(f'<text x="{_LEFT}" y="{y + 14}" fill="{_INK}">{escape(_fit(lane, label_w - 6))}</text>')
        colour = _PALETTE[i % len(_PALETTE)]
        for bar in sorted((b for b in bars if b.lane == lane), key=lambda b: (b.start, b.label)):
            start_at = _instant(bar.start)
            end_at = _instant(bar.end) if bar.end else window_end.timestamp()
            if start_at is None or end_at is None:
                continue
            x1, x2 = x_of(start_at), x_of(end_at)
            width = max(x2 - x1, 1.0)
            if bar.percent is None:
                # Unknown share: grey, labelled "share ?", so it cannot be read as "no traffic".
                fill, opacity, share = _UNKNOWN, 0.6, "share ?"
            else:
                fill = colour
                opacity = 0.35 + 0.65 * min(max(bar.percent, 0.0), 100.0) / 100.0
                share = f"{bar.percent:g}%"
            text = _fit(f"{bar.label or 'model ?'} {share}", width - 4)
            parts.append(
                f'<rect x="{_num(x1)}" y="{y + 3}" width="{_num(width)}" height="{lane_h - 6}" '
                f'fill="{fill}" fill-opacity="{opacity:.2f}" stroke="#ffffff" stroke-width="0.5"/>'
            )
            if text:
                parts.append(f'<text x="{_num(x1 + 3)}" y="{y + 14}" fill="#ffffff">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated label above is escaped


def as_image(svg: Markup, label: str, assets: MutableMapping[str, tuple[bytes, str]]) -> Markup:
    """``svg`` as an ``<img>`` of an in-memory asset (added to ``assets``), for the PDF.

    WeasyPrint draws an inline ``<svg>`` and an ``<img>`` of the same SVG through the same code,
    to the same PDF bytes (checked on the demo report), but it also runs the HTML cascade and box
    building over every node of an inline SVG: on the demo report that was 6% of the render. The
    URL is the SHA-256 of the SVG, so it is deterministic, and only the allow-list fetcher serves it.
    """
    data = str(svg).encode()
    url = f"{ASSET_BASE}charts/{hashlib.sha256(data).hexdigest()}.svg"
    assets[url] = (data, "image/svg+xml")
    return Markup(f'<img class="chart" src="{url}" alt="{escape(label)}">')  # noqa: S704 - label escaped
