"""``truyvet person erase`` on the cluster profile (issue 14's erasure, issue 12's cluster): a ``Distributed``
table takes no ``ALTER ... DELETE``, so the deletion runs on the replicated local tables of the replica
leading each shard (truyvet/schema/replicas.py), and both replicas of every shard lose the rows."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from ingest.persons import save_details
from trace_api import phones
from trace_api.erase import erase
from truyvet.schema import connect
from truyvet.schema.databases import personal, personal_database
from truyvet.schema.replicas import every_server

pytestmark = [pytest.mark.integration]



def _local_counts(servers, database: str, people: list[str]) -> list[dict[str, int]]:  # noqa: ANN001
    return [{p: int(s.execute(f"SELECT count() FROM {personal_database(database)}.person_details_local "
                              "WHERE person_id = %(p)s",
                              {"p": p})[0][0]) for p in people} for s in servers]


def test_person_erase_removes_the_rows_from_both_replicas_of_every_shard(cluster, cluster_db) -> None:  # noqa: ANN001
    people = [f"er{uuid.uuid4().hex[:10]}" for _ in range(12)]  # hashed over both shards
    now = datetime.now(UTC).replace(microsecond=0)
    save_details(cluster_db, [(p, "Lê Văn Xoá", "1980-05-05", "Nam", "Tổ 3", "01834", "cccd", now) for p in people])
    gone = people[::2]
    for p in gone:
        phones.set_phone(cluster_db, p, "0987654321")
    with every_server(cluster.settings) as servers:
        assert servers is not None and len(servers) == 4
        deadline = time.monotonic() + 60  # every replica has fetched the inserted rows
        while sum(sum(c.values()) for c in _local_counts(servers, cluster_db.name, people)) < 2 * len(people):
            assert time.monotonic() < deadline, "the rows did not reach both replicas"
            time.sleep(0.2)
        for p in gone:
            assert erase(cluster_db, p, actor="cli:test", servers=servers) == {
                "person_details": 1, "person_details_conflicts": 0, "person_contacts": 1, "person_cards": 0,
                "person_wards": 1}
        deadline = time.monotonic() + 60  # the mutation replicates to the other replica of each shard
        while any(c[p] for c in _local_counts(servers, cluster_db.name, people) for p in gone):
            assert time.monotonic() < deadline, _local_counts(servers, cluster_db.name, gone)
            time.sleep(0.2)
        kept = _local_counts(servers, cluster_db.name, people[1::2])
        assert sum(sum(c.values()) for c in kept) == 2 * len(people[1::2])  # the others, on both replicas
    db = connect(cluster.settings)
    try:
        for table in ("person_wards", personal(db.name, "person_contacts")):
            assert not db.execute(f"SELECT count() FROM {table} WHERE person_id IN %(p)s", {"p": tuple(gone)})[0][0]
    finally:
        db.close()
