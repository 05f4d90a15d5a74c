"""Token buckets: per-token rate limits (scan intake counted in scans, a batch of N costs N; traces and
personal-detail reads counted in requests) and the per-client throttle of failed authentication.

In-process: each ingest process keeps its own buckets, so with W uvicorn workers a token may reach
W times the rate; run one bucket store per process or put a shared limiter in front for strictness.
"""

from __future__ import annotations

import math
import threading
import time


class TokenBuckets:
    """``rate`` scans per second per key, bursting to ``burst``."""

    def __init__(self, *, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str, cost: int = 1, *, now: float | None = None) -> float:
        """Seconds until ``cost`` could be taken (0: now), without taking anything."""
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), at))
            tokens = min(float(self.burst), tokens + (at - last) * self.rate)
            return 0.0 if cost <= tokens else max((min(cost, self.burst) - tokens) / self.rate, 0.001)

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
                if len(self._buckets) > self.max_keys:
                    self._forget_full(at)
                return 0.0
            self._buckets[key] = (tokens, at)
            missing = min(cost, self.burst) - tokens
            return max(missing / self.rate, 0.001)

    def _forget_full(self, at: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a new bucket would not): memory stays bounded."""
        full = [k for k, (tokens, last) in self._buckets.items() if tokens + (at - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) > self.max_keys:  # still too many keys: the oldest go
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: len(self._buckets) // 2]:
                del self._buckets[key]


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
