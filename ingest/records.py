"""One ClickHouse connection shared by the request threads of the issue-15 services (cards, declarations,
posters): clickhouse-driver runs one statement at a time per connection, so calls are serialised."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from truyvet.schema.db import Database, Row


class SharedDatabase:
    """A :class:`truyvet.schema.db.Database` whose calls take a lock."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self.name = db.name

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        with self._lock:
            return self._db.execute(sql, params)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        with self._lock:
            return self._db.insert(table, columns, rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
