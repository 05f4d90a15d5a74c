"""Per-token token bucket on scan intake."""

from __future__ import annotations

from truyvet.ratelimit import TokenBuckets, retry_after_header


def test_burst_then_refill_per_token() -> None:
    b = TokenBuckets(rate=100, burst=1000)
    assert b.take("a", 1000, now=0.0) == 0
    wait = b.take("a", 500, now=0.0)
    assert wait == 5.0  # 500 missing at 100/s
    assert b.take("b", 1000, now=0.0) == 0  # another token has its own bucket
    assert b.take("a", 500, now=5.0) == 0
    assert b.take("a", 1, now=5.0) > 0


def test_refused_request_costs_nothing() -> None:
    b = TokenBuckets(rate=10, burst=100)
    b.take("a", 100, now=0.0)
    assert b.take("a", 50, now=1.0) > 0
    assert b.take("a", 10, now=1.0) == 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.2) == "3"
