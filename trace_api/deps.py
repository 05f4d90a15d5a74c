"""Request-scoped dependencies: a ClickHouse client checked out for the whole request."""

from __future__ import annotations

import queue
from collections.abc import Iterator

from fastapi import Request

from trace_api.config import TraceSettings
from truyvet.schema import connect
from truyvet.schema.db import DriverDatabase

_idle: queue.SimpleQueue[DriverDatabase] = queue.SimpleQueue()


def get_db(request: Request) -> Iterator[DriverDatabase]:
    """A client used by this request alone, returned to the pool afterwards.

    clickhouse-driver clients are not thread-safe, and FastAPI may run a sync dependency and its
    endpoint on different threads, so a per-thread client could serve two requests at once.
    """
    try:
        db = _idle.get_nowait()
    except queue.Empty:
        settings: TraceSettings = request.app.state.settings
        db = connect(settings)
    try:
        yield db
    finally:
        _idle.put(db)
