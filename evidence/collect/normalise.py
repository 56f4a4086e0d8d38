"""Small helpers shared by the collectors' ``normalise`` functions (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from evidence.clock import isoformat, parse_timestamp
from evidence.collect.interface import RawResponse

_WORKSPACE_PREFIX = re.compile(
    r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+)",
    re.IGNORECASE,
)


def listed_items(responses: Sequence[RawResponse], path_pattern: str) -> Iterator[tuple[RawResponse, dict[str, Any]]]:
    """Yield each element of ``value`` in every successful list page whose path matches."""
    for response in responses:
        if not response.ok or not isinstance(response.body, dict):
            continue
        if response.path_matches(path_pattern) is None:
            continue
        for item in response.body.get("value") or ():
            if isinstance(item, dict):
                yield response, item


#: The form Azure sends almost every timestamp in: UTC with ``Z``, up to 7 fractional digits.
_AZURE_UTC = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,7}))?Z")


def timestamp(value: Any) -> str | None:
    """Normalise an Azure timestamp to ISO 8601 UTC with ``Z``; keep None as None.

    The usual form (``_AZURE_UTC``) is rewritten as text: the same string ``parse_timestamp``
    then ``isoformat`` give (fraction cut to 6 digits, dropped when zero), after the same check
    that the date and time exist. Two per Activity Log event, 300,000 on the large benchmark
    profile, where the datetime round trip was a visible share of normalising.
    """
    if not isinstance(value, str) or not value:
        return None
    match = _AZURE_UTC.fullmatch(value)
    if match is not None:
        head, fraction = match.groups()
        try:
            datetime.fromisoformat(head)  # month 13, hour 24, ...: kept as received, as below
        except ValueError:
            return value
        micro = (fraction or "")[:6].ljust(6, "0")
        return f"{head}Z" if micro == "000000" else f"{head}.{micro}Z"
    try:
        return isoformat(parse_timestamp(value))
    except ValueError:
        return value  # keep what Azure said rather than lose it; the raw file has it too


def workspace_of(arm_id: str) -> str | None:
    match = _WORKSPACE_PREFIX.match(arm_id or "")
    return match.group(1) if match else None


def version_key(version: str) -> tuple[int, int | str]:
    """Sort model versions naturally: numeric versions by value, others after, by text."""
    return (0, int(version)) if version.isdigit() else (1, version)


def dedupe(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Keep the last row per key (case-insensitive ARM IDs): a page fetched twice is one record."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen[str(row[key]).lower()] = row
    return list(seen.values())
