"""The cluster form of the migrations (truyvet/schema/cluster.py): every shipped migration has one, and the
rules hold for the statement shapes new migrations use (issue 12). The forms themselves run on a real
18.16 cluster in tests/integration/cluster/ (the session's cluster is migrated with them)."""

from __future__ import annotations

import pytest

from truyvet.schema.cluster import ClusterSchema, ClusterSchemaError
from truyvet.schema.migrate import MIGRATIONS_TABLE, migrations, render_statement


def _all_forms() -> tuple[ClusterSchema, list[str]]:
    form = ClusterSchema("db1")
    out = list(form.transform(MIGRATIONS_TABLE))
    for migration in migrations():
        for raw in migration.statements:
            out += form.transform(render_statement(raw, "db1"))
    return form, out


def test_every_shipped_migration_has_a_cluster_form() -> None:
    form, statements = _all_forms()
    ddl = [s for s in statements if not s.startswith("INSERT")]
    assert all("ON CLUSTER truyvet" in s for s in ddl), [s for s in ddl if "ON CLUSTER" not in s][:3]
    # Every MergeTree table is replicated with its shard/replica macros and has a Distributed front.
    for name, key in form.shard_keys.items():
        database, table = name.split(".")
        assert any(s.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local ") and "ENGINE = Replicated" in s
                   and f"'/clickhouse/tables/{{shard}}/{name}_local', '{{replica}}'" in s
                   for s in statements), name
        assert any(f"ENGINE = Distributed(truyvet, {database}, {table}_local, {key})" in s for s in statements), name
    assert form.shard_keys["db1.visits"] == "cityHash64(person_id)"
    assert form.shard_keys["db1.cases"] == "cityHash64(case_id)"
    assert form.shard_keys["db1.alerts"] == "cityHash64(ward_code)"
    assert form.shard_keys["db1.api_tokens"] == "cityHash64(token_hash)"
    assert not any("MergeTree" in s and "Replicated" not in s and "Distributed" not in s and s.startswith("CREATE")
                   for s in statements)
    view = [s for s in statements if "MATERIALIZED VIEW" in s][-1]
    assert "TO db1.visits_by_venue_local" in view and "FROM db1.visits_local" in view


def test_rules_for_new_migrations() -> None:
    form = ClusterSchema("db9", "truyvet")
    created = form.transform(
        "CREATE TABLE IF NOT EXISTS follow_ups (case_id String, person_id String, status String, "
        "updated_at DateTime('UTC'), version UInt64) ENGINE = ReplacingMergeTree(version) "
        "PARTITION BY toYYYYMM(updated_at) ORDER BY (case_id, person_id) SETTINGS index_granularity = 1024")
    assert created == [
        "CREATE TABLE IF NOT EXISTS db9.follow_ups_local ON CLUSTER truyvet (case_id String, person_id String, "
        "status String, updated_at DateTime('UTC'), version UInt64) ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/db9.follow_ups_local', '{replica}', version) "
        "PARTITION BY toYYYYMM(updated_at) ORDER BY (case_id, person_id) SETTINGS index_granularity = 1024",
        "CREATE TABLE IF NOT EXISTS db9.follow_ups ON CLUSTER truyvet AS db9.follow_ups_local "
        "ENGINE = Distributed(truyvet, db9, follow_ups_local, cityHash64(case_id))"]
    assert form.transform("CREATE MATERIALIZED VIEW IF NOT EXISTS fu_mv TO follow_ups AS SELECT * FROM follow_ups") \
        == ["CREATE MATERIALIZED VIEW IF NOT EXISTS db9.fu_mv ON CLUSTER truyvet TO db9.follow_ups_local "
            "AS SELECT * FROM db9.follow_ups_local"]
    assert form.transform("ALTER TABLE follow_ups ADD COLUMN note String") == [
        "ALTER TABLE db9.follow_ups_local ON CLUSTER truyvet ADD COLUMN note String",
        "DROP TABLE IF EXISTS db9.follow_ups ON CLUSTER truyvet",
        "CREATE TABLE IF NOT EXISTS db9.follow_ups ON CLUSTER truyvet AS db9.follow_ups_local "
        "ENGINE = Distributed(truyvet, db9, follow_ups_local, cityHash64(case_id))"]
    assert form.transform("ALTER TABLE follow_ups DELETE WHERE status = ''") == [
        "ALTER TABLE db9.follow_ups_local ON CLUSTER truyvet DELETE WHERE status = ''"]
    assert form.transform("CREATE TABLE IF NOT EXISTS scratch (x UInt8) ENGINE = Memory") == [
        "CREATE TABLE IF NOT EXISTS db9.scratch ON CLUSTER truyvet (x UInt8) ENGINE = Memory"]
    assert form.transform("DROP TABLE IF EXISTS fu_mv") == ["DROP TABLE IF EXISTS db9.fu_mv ON CLUSTER truyvet"]
    with pytest.raises(ClusterSchemaError):
        form.transform("OPTIMIZE TABLE follow_ups FINAL")


def test_the_replicated_add_column_a_migration_may_get_past_is_recognised() -> None:
    """truyvet/schema/migrate.py accepts a timed-out ON CLUSTER ``ADD COLUMN`` of a replicated table once the
    column is on every shard (18.16's replicated ALTER race); only that statement shape is recognised."""
    form, statements = _all_forms()
    (local,) = [s for s in statements if s.startswith("ALTER TABLE db1.alerts_local ")]
    assert form.added_columns(local) == ("db1", "alerts_local", ["kind"])
    two = "ALTER TABLE db1.cases_local ON CLUSTER truyvet ADD COLUMN a String, ADD COLUMN IF NOT EXISTS `b` UInt8"
    assert form.added_columns(two) == ("db1", "cases_local", ["a", "b"])
    for other in ("ALTER TABLE db1.cases_local ON CLUSTER truyvet DROP COLUMN a",
                  "ALTER TABLE db1.cases_local ON CLUSTER truyvet ADD COLUMN a String, DROP COLUMN b",
                  "ALTER TABLE db1.cases ON CLUSTER truyvet ADD COLUMN a String",  # not a replicated local table
                  "ALTER TABLE db1.cases_local ADD COLUMN a String",  # not ON CLUSTER
                  "DROP TABLE IF EXISTS db1.alerts ON CLUSTER truyvet"):
        assert form.added_columns(other) is None, other
