"""Per-token rate limit on scan intake: a token bucket counted in scans (a batch of N costs N).

In-process: each ingest process keeps its own buckets, so with W uvicorn workers a token may reach
W times the rate; run one bucket store per process or put a shared limiter in front for strictness.
"""

from __future__ import annotations

import math
import threading
import time


class TokenBuckets:
    """``rate`` scans per second per key, bursting to ``burst``."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, cost: int, *, now: float | None = None) -> float:
        """Take ``cost`` tokens; return 0 if allowed, else the seconds to wait before retrying.

        A request costing more than ``burst`` can never pass; it is told to wait for a full bucket
        (the caller should split it), which is why ``burst`` must be at least the largest batch.
        """
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), at))
            tokens = min(float(self.burst), tokens + (at - last) * self.rate)
            if cost <= tokens:
                self._buckets[key] = (tokens - cost, at)
                return 0.0
            self._buckets[key] = (tokens, at)
            missing = min(cost, self.burst) - tokens
            return max(missing / self.rate, 0.001)


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
