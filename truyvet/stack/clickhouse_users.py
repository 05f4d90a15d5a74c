"""ClickHouse accounts of an installation: ``users.xml`` rendered from its passwords (SHA-256 only).

ClickHouse 18.16 has no GRANT: rights come from the profile (``readonly``, ``allow_ddl``) and the
databases an account may use (``allow_databases``). Beside the data database ``<db>`` are two kept
apart (truyvet/schema/databases.py): ``<db>_audit`` (the audit log) and ``<db>_personal`` (personal
details, conflicting cards, phones, printed cards). The accounts:

==========  =================  ===============================================  ===========================
account     profile            uses                                             databases
==========  =================  ===============================================  ===========================
admin       DDL                migrations, ``truyvet sql``, the CLI, fixtures   every one
ingest      no DDL             tokens, venues, person_wards; personal stores    every one
                               (insert and read); audit_log (insert: card
                               prints)
worker      no DDL             visits (insert), venues, person_wards (read)     data only
trace       no DDL             cases (insert), reads; personal stores (read,    every one
                               phones written); audit_log (insert and read)
dispatcher  no DDL             alerts and webhooks (read)                       data only
retention   DDL                ``ALTER TABLE visits DROP PARTITION``, expired   data and personal, never
                               rows of the personal stores (the worker's timer) audit
==========  =================  ===============================================  ===========================

With ``allow_ddl=0`` an account can run no ALTER (so no ``ALTER ... DELETE``), DROP, TRUNCATE, RENAME,
OPTIMIZE, CREATE nor ``SET allow_ddl``; the one account that may (retention) cannot use the audit
database. There is no ``default`` account. ``system`` is open to every account (18.16 always allows it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape

from truyvet.schema.databases import is_data_database, personal_database
from truyvet.secretstore import CLICKHOUSE_ACCOUNTS
from truyvet.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy" / "clickhouse"

PROFILE_OF = {"admin": "admin", "ingest": "service", "worker": "service", "trace": "service",
              "dispatcher": "service", "retention": "maintenance"}
# Accounts held to listed databases: the data databases, and for these also their personal one; the
# others may use every database (they cannot change any).
LIMITED = ("retention", "worker", "dispatcher")
WITH_PERSONAL = ("retention",)
LOOPBACK = ("127.0.0.1", "::1")

def databases_of(account: str, data_databases: Iterable[str]) -> list[str]:
    """The databases a :data:`LIMITED` account may use, given the installation's data databases."""
    data = sorted({d for d in data_databases if is_data_database(d)})
    extra = [personal_database(d) for d in data] if account in WITH_PERSONAL else []
    return sorted(data + extra)


def render_users_xml(passwords: Mapping[str, str], *, limited_databases: Iterable[str],
                     networks: Iterable[str] = LOOPBACK, template: str | None = None) -> str:
    """``users.xml`` for one server (a cluster renders it once per node, with its networks).

    :param passwords: account -> password (every account of :data:`CLICKHOUSE_ACCOUNTS`).
    :param limited_databases: the data databases the :data:`LIMITED` accounts may use (names of those
        kept apart are ignored: :func:`databases_of` decides who reaches them).
    :param template: the file's text with ``{users}`` (default: deploy/clickhouse/users.xml).
    """
    missing = [a for a in CLICKHOUSE_ACCOUNTS if a not in passwords]
    if missing:
        raise ValueError(f"no password for ClickHouse account(s) {missing}")
    nets = "".join(f"<ip>{escape(n)}</ip>" for n in networks)
    data = list(limited_databases)
    users = []
    for account in CLICKHOUSE_ACCOUNTS:
        digest = hashlib.sha256(passwords[account].encode()).hexdigest()
        databases = ""
        if account in LIMITED:
            databases = ("      <allow_databases>"
                         + "".join(f"<database>{escape(d)}</database>"
                                   for d in databases_of(account, data) or ["none"])
                         + "</allow_databases>\n")
        users.append(f"    <{account}>\n      <password_sha256_hex>{digest}</password_sha256_hex>\n"
                     f"      <networks>{nets}</networks>\n      <profile>{PROFILE_OF[account]}</profile>\n"
                     f"      <quota>default</quota>\n{databases}    </{account}>\n")
    text = template if template is not None else (DEPLOY / "users.xml").read_text()
    return text.replace("{users}", "".join(users))
