"""Append-only audit log: every case registration, trace, export and read of personal details.

What is enforced where:
- In this code the API only ever INSERTs into ``audit_log`` (:func:`record`); :func:`entries` reads it
  for ``GET /v1/audit`` (admins). No statement here or elsewhere in the service updates or deletes it.
- The server enforces it (ClickHouse 18.16, users.xml): the log lives in its own database
  ``<database>_audit`` (:func:`audit_table`); the trace API's account has ``allow_ddl=0`` (no ALTER,
  DELETE, DROP, TRUNCATE), and the only service account with DDL (retention) cannot use that database
  (truyvet/stack/clickhouse_users.py; tests/integration/truyvet/test_clickhouse_accounts.py).
- On ClickHouse >= 20.5 an operator may go further with SQL access control::

      CREATE USER trace_api IDENTIFIED BY '...';
      GRANT SELECT ON truyvet.* TO trace_api;
      GRANT INSERT ON truyvet.cases TO trace_api;
      GRANT INSERT ON truyvet_audit.audit_log TO trace_api;   -- no ALTER/DELETE/DROP/TRUNCATE on it

  and an admin reader with ``GRANT SELECT ON truyvet.audit_log``. The table is a plain MergeTree
  (no ReplacingMergeTree/collapsing), so even a duplicate insert never replaces an entry.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from truyvet.auth import Principal
from truyvet.redact import scrub
from truyvet.schema.databases import audit_database
from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

COLUMNS = ["at", "actor", "role", "ward_code", "action", "case_id", "params", "result_count", "reason"]

# The actions written (the audit vocabulary).
CASE_CREATE = "case.create"
CASE_TRACE = "case.trace"
CASE_EXPORT = "case.export"
CASE_SITES = "case.exposure_sites"
PERSON_READ = "person.read"
PERSON_READ_DENIED = "person.read_denied"
AUDIT_READ = "audit.read"
ALERTS_READ = "alerts.read"
CONFLICTS_READ = "person.conflicts_read"
CASES_LIST = "cases.list"
# Issue 14: follow-up lists, phones, erasure.
FOLLOWUP_LIST = "followup.list"
FOLLOWUP_UPDATE = "followup.update"
FOLLOWUP_CASE = "followup.register_case"
PHONE_READ = "person.phone_read"
PERSON_ERASE = "person.erase"


def audit_table(db: Database) -> str:
    """``<database>_audit.audit_log``: the log's own database (migration 0070)."""
    return f"{audit_database(db.name)}.audit_log"


def record(
    db: Database,
    principal: Principal,
    action: str,
    *,
    case_id: str = "",
    params: dict[str, Any] | None = None,
    result_count: int = 0,
    reason: str = "",
) -> None:
    """Append one entry (who, role, ward, when, what, parameters, how many results, why)."""
    db.insert(
        audit_table(db),
        COLUMNS,
        [
            (
                datetime.now(UTC).replace(microsecond=0),
                principal.actor,
                principal.role.value,
                principal.ward_code,
                action,
                case_id,
                scrub(orjson.dumps(params or {}, option=orjson.OPT_SORT_KEYS).decode()),
                result_count,
                scrub(reason),  # free text: an ID number or card text typed here is not kept
            )
        ],
    )


def entries(
    db: Database,
    *,
    since: datetime | None,
    until: datetime | None,
    action: str | None,
    case_id: str | None,
    actor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first; ``since``/``until`` are a range of the table's primary key (``at``)."""
    where: list[str] = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        where.append("at >= %(since)s")
        params["since"] = since
    if until is not None:
        where.append("at <= %(until)s")
        params["until"] = until
    for name, value in (("action", action), ("case_id", case_id), ("actor", actor)):
        if value is not None:
            where.append(f"{name} = %({name})s")
            params[name] = value
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {audit_table(db)} WHERE {' AND '.join(where)} "
        "ORDER BY at DESC, actor LIMIT %(limit)s",
        params,
    )
    out = []
    for row in rows:
        entry = dict(zip(COLUMNS, row, strict=True))
        entry["params"] = orjson.loads(entry["params"] or "{}")
        out.append(entry)
    return out
