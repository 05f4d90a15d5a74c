"""Request-scoped dependencies: a ClickHouse client checked out for the whole request."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from fastapi import Request

from trace_api.config import TraceSettings
from truyvet.schema import connect
from truyvet.schema.db import DriverDatabase

T = TypeVar("T")

_idle: queue.SimpleQueue[DriverDatabase] = queue.SimpleQueue()
# Side reads and writes of one request run here, each on a client of its own (clickhouse-driver is
# synchronous: one statement in flight per connection).
_side = ThreadPoolExecutor(max_workers=16, thread_name_prefix="trace-side")


@contextmanager
def checkout(settings: TraceSettings) -> Iterator[DriverDatabase]:
    """A client from the pool (a new one if none is idle), returned to it afterwards."""
    try:
        db = _idle.get_nowait()
    except queue.Empty:
        db = connect(settings)
    try:
        yield db
    finally:
        _idle.put(db)


def get_db(request: Request) -> Iterator[DriverDatabase]:
    """A client used by this request alone, returned to the pool afterwards.

    clickhouse-driver clients are not thread-safe, and FastAPI may run a sync dependency and its
    endpoint on different threads, so a per-thread client could serve two requests at once.
    """
    with checkout(request.app.state.settings) as db:
        yield db


def in_background(settings: TraceSettings, fn: Callable[[DriverDatabase], T]) -> Future[T]:
    """Run ``fn(db)`` on another thread with its own pooled client; ``result()`` re-raises its error."""

    def run() -> T:
        with checkout(settings) as db:
            return fn(db)

    return _side.submit(run)
