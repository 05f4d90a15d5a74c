"""Times in answers: RFC 3339 UTC to the second (docs/api.md), fast for large traces."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%dT")


@lru_cache(maxsize=65536)
def iso_seconds(seconds: int) -> str:
    """RFC 3339 UTC to the second, built from a cached day: a large trace has ~100,000 distinct times."""
    day, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_iso_day(day)}{hours:02d}:{minutes:02d}:{secs:02d}Z"
