"""Append-only audit log: every case registration, trace, export and read of personal details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from truyvet.auth import Principal
from truyvet.schema.db import Database

COLUMNS = ["at", "actor", "role", "ward_code", "action", "case_id", "params", "result_count", "reason"]


def record(db: Database, principal: Principal, action: str, *, case_id: str = "", params: dict[str, Any] | None = None,
           result_count: int = 0, reason: str = "") -> None:
    db.insert("audit_log", COLUMNS, [(
        datetime.now(UTC).replace(microsecond=0), principal.actor, principal.role.value, principal.ward_code,
        action, case_id, orjson.dumps(params or {}, option=orjson.OPT_SORT_KEYS).decode(), result_count, reason,
    )])
