"""The collectors' shared normalising helpers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.clock import isoformat, parse_timestamp
from evidence.collect.normalise import timestamp


def _through_datetime(value: str) -> str | None:
    """What ``timestamp`` returned before its text fast path: the datetime round trip."""
    if not value:
        return None
    try:
        return isoformat(parse_timestamp(value))
    except ValueError:
        return value


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


# Mostly Azure's own form, with dates and times that do not exist drawn often.
_AZURE_LIKE = st.builds(
    lambda y, mo, d, h, mi, s, fraction: f"{y}-{mo}-{d}T{h}:{mi}:{s}{fraction}Z",
    st.sampled_from(["0000", "0001", "1900", "2024", "2026", "9999"]),
    _two(0, 13),
    _two(0, 32),
    _two(0, 25),
    _two(0, 60),
    _two(0, 61),
    st.sampled_from(["", ".", ".0", ".1", ".000001", ".0000001", ".1234567", ".0000000", ".12345678"]),
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_AZURE_LIKE, st.text(alphabet="0123456789-T:.Z+ ", max_size=30)))
def test_timestamp_fast_path_gives_what_the_datetime_round_trip_gives(value: str) -> None:
    assert timestamp(value) == _through_datetime(value)


def test_timestamp_examples() -> None:
    assert timestamp("2026-09-28T06:00:00.1234567Z") == "2026-09-28T06:00:00.123456Z"
    assert timestamp("2026-09-28T06:00:00.0000000Z") == "2026-09-28T06:00:00Z"
    assert timestamp("2026-09-28T08:00:00+02:00") == "2026-09-28T06:00:00Z"
    assert timestamp("2026-02-30T00:00:00Z") == "2026-02-30T00:00:00Z"  # kept as Azure said it
    assert timestamp("") is None and timestamp(None) is None
