"""Request-scoped dependencies: a ClickHouse client per request thread, settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from fastapi import Request

from trace_api.config import TraceSettings
from truyvet.schema import connect
from truyvet.schema.db import DriverDatabase

_local = threading.local()


def get_db(request: Request) -> Iterator[DriverDatabase]:
    """One clickhouse-driver client per worker thread (the client is not thread-safe)."""
    settings: TraceSettings = request.app.state.settings
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = connect(settings)
    yield db
