"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order, each recorded once.

A file holds one or more statements separated by ``;`` at the end of a line. Every statement must
be accepted by ClickHouse 18.16 and by current ClickHouse: the suite applies all of them to both.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from truyvet.schema.cluster import ClusterSchema
from truyvet.schema.databases import audit_database, companions, personal_database
from truyvet.schema.db import Database, DatabaseError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("truyvet.schema").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        statements = tuple(s.strip() for s in re.split(r";\s*\n", body + "\n") if s.strip())
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


def render_statement(statement: str, database: str) -> str:
    """Fill ``{audit_database}`` and ``{personal_database}``: the databases kept apart, named after the
    data database (truyvet/schema/databases.py)."""
    return (statement.replace("{audit_database}", audit_database(database))
            .replace("{personal_database}", personal_database(database)))


def drop_database(db: Database, name: str) -> None:
    """Drop a database and those kept apart beside it (tests and benchmarks clean up with this); those
    first: a chdb client names its own database before every statement."""
    for each in (*companions(name), name):
        db.execute(f"DROP DATABASE IF EXISTS {each}")


DDL_TIMEOUT = 159  # TIMEOUT_EXCEEDED: an ON CLUSTER task some host did not finish in distributed_ddl_task_timeout
COLUMN_EXISTS = 44  # ILLEGAL_COLUMN: "column with this name already exists" (the same ALTER applied again)


def _execute(db: Database, statement: str, form: ClusterSchema | None) -> None:
    """Run one statement; on the cluster, get past ClickHouse 18.16's race in replicated ``ALTER ... ON
    CLUSTER``: both replicas of a shard may run the ALTER (the second fails, "column already exists",
    then fails to mark the shard done, "Node exists"), so the statement waits out its timeout although
    the change is made. Such a timeout of an ``ADD COLUMN``, or its "already exists" when the migration
    is applied again after the stalled server was restarted, is accepted once the column is on every
    shard's table; any other failure is raised."""
    try:
        db.execute(statement)
    except DatabaseError as exc:
        code = exc.context.get("code")
        added = form.added_columns(statement) if form is not None and code in (DDL_TIMEOUT, COLUMN_EXISTS) else None
        if added is None or form is None:
            raise
        database, table, columns = added
        shards = int(db.execute("SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = %(c)s",
                                {"c": form.cluster})[0][0])
        found = int(db.execute(f"SELECT count() FROM cluster({form.cluster}, system, columns) WHERE database = "
                               "%(d)s AND table = %(t)s AND name IN %(n)s",
                               {"d": database, "t": table, "n": tuple(columns)})[0][0])
        if found < shards * len(columns):
            raise
        logger.warning("ON CLUSTER ALTER of %s.%s timed out on a host but every shard has %s (ClickHouse "
                       "18.16's replicated ALTER race); going on", database, table, ", ".join(columns))


MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version UInt32, name String, applied_at DateTime('UTC')) "
    "ENGINE = MergeTree ORDER BY version"
)


def apply_migrations(db: Database, *, cluster: str | None = None) -> list[Migration]:
    """Apply what is not yet recorded in ``schema_migrations``; return what was applied.

    :param cluster: the ClickHouse cluster's name on the cluster profile: every statement is applied in
        its cluster form (:mod:`truyvet.schema.cluster`); ``None`` applies the files as written.
    """
    form = ClusterSchema(db.name, cluster) if cluster else None
    for statement in form.transform(MIGRATIONS_TABLE) if form else [MIGRATIONS_TABLE]:
        db.execute(statement)
    done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    applied = []
    for migration in migrations():
        rendered = [render_statement(raw, db.name) for raw in migration.statements]
        statements = [s for raw in rendered for s in (form.transform(raw) if form else [raw])]
        if migration.version in done:
            continue  # transformed anyway: the cluster form remembers the tables' sharding keys
        for statement in statements:
            _execute(db, statement, form)
        db.insert(
            "schema_migrations",
            ["version", "name", "applied_at"],
            [(migration.version, migration.name, datetime.now(UTC).replace(microsecond=0))],
        )
        logger.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration)
    return applied
