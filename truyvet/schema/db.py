"""One small interface over ClickHouse, with two engines behind it.

``DriverDatabase`` talks to a server with clickhouse-driver (18.16 on these machines, 24+ for
users). ``ChdbDatabase`` runs the same SQL on current ClickHouse in-process (chdb), so the suite
proves every statement is accepted by both. Parameters are substituted client-side with
clickhouse-driver's escaping (``%(name)s`` placeholders): 18.16 has no server-side parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from clickhouse_driver import Client
from clickhouse_driver.util.escape import escape_params

from truyvet.exceptions import TruyvetError
from truyvet.settings import CommonSettings

logger = logging.getLogger(__name__)

Row = tuple[Any, ...]

# Parameters are rendered into the statement, so a large IN list or array is statement text: a
# depth-2 trace names thousands of persons and venues, past the server's default 256 KiB.
MAX_QUERY_SIZE = 64 * 1024 * 1024


class DatabaseError(TruyvetError):
    """A ClickHouse statement failed; ``code`` is ClickHouse's error code where known."""


class Database(Protocol):
    name: str

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int: ...

    def close(self) -> None: ...


class _UtcServerInfo:
    """What clickhouse-driver's escaping asks of a server: its time zone. Ours is always UTC."""

    @staticmethod
    def get_timezone() -> str:
        return "UTC"


class _UtcContext:
    server_info = _UtcServerInfo()
    settings: dict[str, Any] = {}


def render(sql: str, params: dict[str, Any] | None) -> str:
    """Substitute ``%(name)s`` placeholders client-side, escaped as ClickHouse literals (times in UTC)."""
    if not params:
        return sql
    return sql % escape_params(params, _UtcContext())


class DriverDatabase:
    """A ClickHouse server over the native protocol."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        database: str,
        user: str,
        password: str,
        connect_timeout: float = 5,
        send_receive_timeout: float = 120,
        alt_hosts: str = "",
    ) -> None:
        self.name = database
        # ``alt_hosts`` (cluster profile): the other servers, tried in turn when a connection to the
        # current one fails; a query interrupted by a server's death fails once, the next reconnects.
        extra: dict[str, Any] = {"alt_hosts": alt_hosts} if alt_hosts else {}
        self._client = Client(
            host=host,
            port=port,
            **extra,
            database=database,
            user=user,
            password=password,
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            settings={"use_numpy": False, "max_query_size": MAX_QUERY_SIZE},
        )

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        try:
            return self._client.execute(render(sql, params))
        except Exception as exc:
            code = getattr(exc, "code", None)
            raise DatabaseError(f"ClickHouse statement failed: {exc}", code=code, sql=sql[:200]) from exc

    def execute_with_columns(self, sql: str) -> tuple[list[Row], list[tuple[str, str]]]:
        """Rows and ``(name, type)`` of each column (``truyvet sql``)."""
        try:
            rows, columns = self._client.execute(sql, with_column_types=True)
        except Exception as exc:
            raise DatabaseError(f"ClickHouse statement failed: {exc}", code=getattr(exc, "code", None)) from exc
        return rows, columns

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        data = [tuple(r) for r in rows]
        if not data:
            return 0
        try:
            self._client.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", data)
        except Exception as exc:
            code = getattr(exc, "code", None)
            raise DatabaseError(f"ClickHouse insert failed: {exc}", code=code, table=table) from exc
        return len(data)

    def close(self) -> None:
        self._client.disconnect()


class ChdbDatabase:
    """Current ClickHouse in-process (chdb); same SQL, used by the suite to check portability."""

    def __init__(self, *, database: str, path: str | None = None) -> None:
        from chdb import session  # imported lazily: chdb is a dev dependency only

        self.name = database
        self._session = session.Session(path) if path else session.Session()
        self._session.query(f"SET max_query_size = {MAX_QUERY_SIZE}")
        self._session.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._session.query(f"USE {database}")

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        import orjson

        try:
            # chdb is one embedded server per process: another ChdbDatabase may have switched the
            # current database, so name ours before every statement.
            self._session.query(f"USE {self.name}")
            result = self._session.query(render(sql, params), "JSONCompact")
        except Exception as exc:
            raise DatabaseError(f"chdb statement failed: {exc}", sql=sql[:200]) from exc
        text = result.bytes() if hasattr(result, "bytes") else bytes(result)
        if not text.strip():
            return []
        doc = orjson.loads(text)
        types = [c["type"] for c in doc.get("meta", [])]
        return [tuple(_from_json(v, t) for v, t in zip(row, types, strict=True)) for row in doc["data"]]

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        data = [tuple(r) for r in rows]
        if not data:
            return 0
        values = ", ".join("(" + ", ".join(render("%(v)s", {"v": v}) for v in row) + ")" for row in data)
        self.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}")
        return len(data)

    def close(self) -> None:
        self._session.close()


def _from_json(value: Any, type_name: str) -> Any:
    """Bring chdb's JSON values to the Python types clickhouse-driver returns."""
    if value is None:
        return None
    base = type_name.removeprefix("Nullable(").rstrip(")") if type_name.startswith("Nullable(") else type_name
    if base.startswith("DateTime"):
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    if base.startswith(("UInt64", "Int64", "UInt32", "Int32", "UInt16", "Int16", "UInt8", "Int8")):
        return int(value)
    if base.startswith("Float"):
        return float(value)
    return value


def connect(settings: CommonSettings, *, database: str | None = None) -> DriverDatabase:
    """A client for the configured server (keyword-only options, one per thread)."""
    return DriverDatabase(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        database=database if database is not None else settings.clickhouse_database,
        user=settings.clickhouse_user,
        password=settings.clickhouse_secret(),
        alt_hosts=settings.clickhouse_alt_hosts,
    )
