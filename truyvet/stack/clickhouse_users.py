"""ClickHouse accounts of an installation: ``users.xml`` rendered from its passwords (SHA-256 only).

ClickHouse 18.16 has no GRANT: rights come from the profile (``readonly``, ``allow_ddl``) and the
databases an account may use (``allow_databases``). The accounts:

==========  =================  =================================================================
admin       DDL, every db      migrations, ``truyvet sql``, the CLI, the tests' fixtures
ingest      no DDL             tokens, venues, person_details (insert and read); issue 15: person_cards,
                               declarations, venue_roster (insert and read), audit_log (insert: card prints)
worker      no DDL             visits (insert), venues and person_details (read)
trace       no DDL             cases (insert), reads; ``<db>_audit.audit_log`` (insert and read)
dispatcher  no DDL             alerts and webhooks (read)
retention   DDL, main db only  ``ALTER TABLE visits DROP PARTITION`` (the worker's retention timer);
                               it cannot reach ``<db>_audit``
==========  =================  =================================================================

With ``allow_ddl=0`` an account can run no ALTER (so no ``ALTER ... DELETE``), DROP, TRUNCATE, RENAME,
OPTIMIZE, CREATE nor ``SET allow_ddl``; the one account that may (retention) cannot use the audit
database. There is no ``default`` account.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape

from truyvet.secretstore import CLICKHOUSE_ACCOUNTS
from truyvet.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy" / "clickhouse"

PROFILE_OF = {"admin": "admin", "ingest": "service", "worker": "service", "trace": "service",
              "dispatcher": "service", "retention": "maintenance"}
# Accounts held to listed databases; the others may use every database (they cannot change any).
LIMITED = ("retention",)
LOOPBACK = ("127.0.0.1", "::1")


def audit_database(database: str) -> str:
    """The database of ``audit_log``: apart, so the one account with DDL on the data cannot touch it."""
    return f"{database}_audit"


def render_users_xml(passwords: Mapping[str, str], *, limited_databases: Iterable[str],
                     networks: Iterable[str] = LOOPBACK, template: str | None = None) -> str:
    """``users.xml`` for one server (a cluster renders it once per node, with its networks).

    :param passwords: account -> password (every account of :data:`CLICKHOUSE_ACCOUNTS`).
    :param limited_databases: the databases the :data:`LIMITED` accounts may use (never an audit one).
    :param template: the file's text with ``{users}`` (default: deploy/clickhouse/users.xml).
    """
    missing = [a for a in CLICKHOUSE_ACCOUNTS if a not in passwords]
    if missing:
        raise ValueError(f"no password for ClickHouse account(s) {missing}")
    nets = "".join(f"<ip>{escape(n)}</ip>" for n in networks)
    allowed = sorted({d for d in limited_databases if not d.endswith("_audit")})
    users = []
    for account in CLICKHOUSE_ACCOUNTS:
        digest = hashlib.sha256(passwords[account].encode()).hexdigest()
        databases = ""
        if account in LIMITED:
            databases = ("      <allow_databases>"
                         + "".join(f"<database>{escape(d)}</database>" for d in allowed or ["none"])
                         + "</allow_databases>\n")
        users.append(f"    <{account}>\n      <password_sha256_hex>{digest}</password_sha256_hex>\n"
                     f"      <networks>{nets}</networks>\n      <profile>{PROFILE_OF[account]}</profile>\n"
                     f"      <quota>default</quota>\n{databases}    </{account}>\n")
    text = template if template is not None else (DEPLOY / "users.xml").read_text()
    return text.replace("{users}", "".join(users))
