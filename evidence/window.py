"""Parsing the time windows people ask for: ISO 8601 intervals, quarters, and "the last N days"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from evidence.clock import parse_timestamp
from evidence.domain import Window
from evidence.errors import UsageError

_QUARTER = re.compile(r"^(?P<year>\d{4})-?Q(?P<q>[1-4])$", re.IGNORECASE)
_LAST = re.compile(r"^(?P<n>\d+)(?P<unit>[hdw])$", re.IGNORECASE)
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def _instant(text: str, what: str) -> datetime:
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return parse_timestamp(value)
    except ValueError:
        raise UsageError(
            f"window {what} {text!r} is not an ISO 8601 date or time",
            hint="write it like 2026-07-01T00:00:00Z",
        ) from None


def parse_instant(text: str, what: str) -> datetime:
    """One instant (a date, or a date-time in UTC unless an offset is given), e.g. ``--since``."""
    return _instant(text, what)


def checked(start: datetime, end: datetime, now: datetime) -> Window:
    if end <= start:
        raise UsageError(
            f"window end {end.isoformat()} is not after its start {start.isoformat()}",
            hint="give the earlier instant first: START/END",
        )
    if end > now:
        raise UsageError(
            f"window end {end.isoformat()} is in the future (now is {now.isoformat()})",
            hint="evidence can only cover time that has passed; end the window at or before now",
        )
    return Window(start=start, end=end)


def parse_interval(text: str, now: datetime) -> Window:
    """``START/END`` in ISO 8601 (dates or date-times, UTC unless an offset is given)."""
    if "/" not in text:
        raise UsageError(
            f"window {text!r} is not an interval",
            hint="use START/END, e.g. 2026-07-01T00:00:00Z/2026-10-01T00:00:00Z, or --quarter/--last",
        )
    start_text, _, end_text = text.partition("/")
    return checked(_instant(start_text, "start"), _instant(end_text, "end"), now)


def parse_quarter(text: str, now: datetime) -> Window:
    """``2026Q3`` is [2026-07-01, 2026-10-01) in UTC."""
    match = _QUARTER.match(text.strip())
    if not match:
        raise UsageError(f"quarter {text!r} is not of the form YYYYQn", hint="e.g. --quarter 2026Q3")
    year, quarter = int(match["year"]), int(match["q"])
    start = datetime(year, 3 * (quarter - 1) + 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if quarter == 4 else datetime(year, 3 * quarter + 1, 1, tzinfo=UTC)
    return checked(start, end, now)


def parse_last(text: str, now: datetime) -> Window:
    """``30d``, ``12h`` or ``2w``: the window that ends now."""
    match = _LAST.match(text.strip())
    if not match or int(match["n"]) == 0:
        raise UsageError(f"--last {text!r} is not a duration", hint="use a number and h, d or w, e.g. --last 30d")
    span = int(match["n"]) * _UNITS[match["unit"].lower()]
    return checked(now - span, now, now)
