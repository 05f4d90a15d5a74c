"""Per-token rate limits of the trace API (issue 13, item 6): traces and reads of personal details.

Each token has a bucket per kind (``TraceSettings.traces_per_minute``, ``personal_reads_per_minute``),
in this process; past it the answer is 429 with ``Retry-After``, before anything is read.
"""

from __future__ import annotations

from prometheus_client import Counter
from starlette.requests import Request

from trace_api.config import TraceSettings
from truyvet.auth import Principal
from truyvet.ratelimit import TokenBuckets, retry_after_header
from truyvet.web import ApiError

TRACE = "trace"
PERSONAL = "personal"
LIMITED = Counter("truyvet_trace_rate_limited_total", "Trace API requests refused by a per-token limit", ["kind"])


def buckets(settings: TraceSettings) -> dict[str, TokenBuckets]:
    return {TRACE: TokenBuckets(rate=settings.traces_per_minute / 60, burst=settings.traces_per_minute),
            PERSONAL: TokenBuckets(rate=settings.personal_reads_per_minute / 60,
                                   burst=settings.personal_reads_per_minute)}


def spend(request: Request, principal: Principal, *kinds: str) -> None:
    """Take one request of each kind from the token's buckets, or answer 429 (nothing is taken then)."""
    limits: dict[str, TokenBuckets] = request.app.state.limits
    for kind in kinds:
        wait = limits[kind].wait(principal.token_prefix)
        if wait:
            LIMITED.labels(kind).inc()
            raise ApiError(429, "rate_limited", f"too many {kind} requests for this token; retry later",
                           headers={"Retry-After": retry_after_header(wait)})
    for kind in kinds:
        limits[kind].take(principal.token_prefix, 1)
