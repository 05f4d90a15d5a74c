"""The databases of an installation: the data database and two named after it, kept apart by account.

- ``<db>_audit`` holds the audit log (migration 0070): the one service account allowed DDL on the data
  (retention) cannot use it, so no service can alter, delete from or drop the log.
- ``<db>_personal`` holds the personal stores (migration 0094): names, birth dates and addresses from
  cards, conflicting cards, phones and printed cards. Only the ingest and trace accounts (the doors that
  write and the health roles that read), retention and the admin reach it; the worker and the dispatcher
  cannot (ClickHouse 18.16 grants by database only, ``allow_databases``). The worker needs a person's
  residence ward alone, which ``person_wards`` in the data database gives.
"""

from __future__ import annotations

AUDIT_SUFFIX = "_audit"
PERSONAL_SUFFIX = "_personal"
PERSONAL_TABLES = ("person_details", "person_details_conflicts", "person_contacts", "person_cards")


def audit_database(database: str) -> str:
    return f"{database}{AUDIT_SUFFIX}"


def personal_database(database: str) -> str:
    return f"{database}{PERSONAL_SUFFIX}"


def personal(database: str, table: str) -> str:
    """``<db>_personal.<table>``: the qualified name of a personal store of data database ``database``."""
    if table not in PERSONAL_TABLES:
        raise ValueError(f"{table} is not a personal store")
    return f"{personal_database(database)}.{table}"


def database_of(database: str, table: str) -> str:
    """The database holding store ``table`` of data database ``database``: a personal store's is
    ``<db>_personal``, the audit log's ``<db>_audit``, every other's the data database itself."""
    if table in PERSONAL_TABLES:
        return personal_database(database)
    return audit_database(database) if table == "audit_log" else database


def is_data_database(name: str) -> bool:
    """Not one of the databases kept apart (audit, personal)."""
    return not name.endswith((AUDIT_SUFFIX, PERSONAL_SUFFIX))


def companions(database: str) -> tuple[str, str]:
    """The databases kept apart beside ``database``, to drop before it."""
    return audit_database(database), personal_database(database)
