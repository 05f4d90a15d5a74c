"""Times in trace answers: RFC 3339 UTC to the second, the same text datetime would write."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from trace_api.timefmt import iso_seconds


@given(st.integers(min_value=-2_000_000_000, max_value=4_000_000_000))
def test_iso_seconds_matches_datetime(seconds: int) -> None:
    assert iso_seconds(seconds) == datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_iso_seconds_at_day_edges() -> None:
    assert iso_seconds(0) == "1970-01-01T00:00:00Z"
    assert iso_seconds(-1) == "1969-12-31T23:59:59Z"
    assert iso_seconds(1_764_115_199) == "2025-11-25T23:59:59Z"
