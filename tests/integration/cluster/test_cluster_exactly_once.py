"""Exactly once in effect on the cluster (issue 12, item 3): a worker batch written again leaves no doubled
visit.

The worker writes visit rows through ``visits`` (a ``Distributed`` table, synchronous inserts) into
``visits_local`` (``ReplicatedReplacingMergeTree(version)``) on one replica of each shard; the
materialized view fills ``visits_by_venue_local`` on the same server. Two mechanisms, each shown here
through the worker's own sink (:class:`streams.sink.VisitSink`):

1. the same block again (the sink's retry after an error it could not tell from a failure, e.g. the
   connection died after the server stored the rows): ClickHouse's replicated block deduplication drops
   it in ``visits``: the stored row count does not change. 18.16 does not deduplicate the view's
   target, so ``visits_by_venue`` may hold the rows twice;
2. the same visits in a new block (Kafka redelivers a batch after a worker crash: same visit ids and
   versions, a new ``written_at``): both copies are stored, and the versioned rows make readers
   (``FINAL``, ``argMax(..., version)``: trace API, matcher, reports) see each visit once.
"""

from __future__ import annotations

import time
import uuid

import pytest

from streams.sink import VisitSink, visit_rows
from streams.visits import VisitSpan
from truyvet.schema import connect

pytestmark = [pytest.mark.integration]


def _rows(n: int, *, written_at: int) -> list[tuple[object, ...]]:
    t0 = int(time.time()) - 86400
    rows = []
    for i in range(n):
        person = f"eo-{uuid.uuid4().hex[:10]}"  # persons hash over both shards
        span = VisitSpan(visit_id=f"v-{uuid.uuid4().hex}", venue_id=f"venue-{i % 7}", t_in=t0 + 60 * i,
                         t_out=t0 + 60 * i + 3600, source_in=f"s-{i}", source_out="")
        rows += visit_rows(person, [span], version=1000 + i, deleted=False, now=written_at)
    return rows


def _counts(db, ids: tuple[str, ...]) -> dict[str, int]:  # noqa: ANN001
    one = lambda sql: int(db.execute(sql, {"ids": ids})[0][0])  # noqa: E731
    return {
        "visits rows": one("SELECT count() FROM visits WHERE visit_id IN %(ids)s"),
        "visits FINAL": one("SELECT count() FROM visits FINAL WHERE visit_id IN %(ids)s"),
        "visits argMax": one("SELECT count() FROM (SELECT visit_id, argMax(t_out, version) FROM visits "
                             "WHERE visit_id IN %(ids)s GROUP BY visit_id)"),
        "visits_by_venue rows": one("SELECT count() FROM visits_by_venue WHERE visit_id IN %(ids)s"),
        "visits_by_venue FINAL": one("SELECT count() FROM visits_by_venue FINAL WHERE visit_id IN %(ids)s"),
    }


def test_a_batch_written_again_leaves_no_doubled_visit(cluster) -> None:  # noqa: ANN001
    sink = VisitSink(connect=lambda: connect(cluster.settings), max_backoff=1)
    db = connect(cluster.settings)
    try:
        # 1. The very same block twice: replicated deduplication.
        rows = _rows(200, written_at=int(time.time()))
        ids = tuple(str(r[0]) for r in rows)
        sink.write_once(rows)
        sink.write_once(rows)
        after_retry = _counts(db, ids)
        print(f"\nsame block twice: {after_retry}")
        assert after_retry["visits rows"] == len(rows), "the retried block was stored again in visits"
        assert after_retry["visits FINAL"] == after_retry["visits argMax"] == len(rows)
        assert after_retry["visits_by_venue FINAL"] == len(rows)

        # 2. The same visits in a new block (redelivery after a crash): versioned rows, read once.
        again = [(*r[:9], int(r[9]) + 5) for r in rows]  # type: ignore[call-overload]
        sink.write_once(again)
        redelivered = _counts(db, ids)
        print(f"redelivered in a new block: {redelivered}")
        assert redelivered["visits rows"] == 2 * len(rows), "a new block is new data to ClickHouse"
        assert redelivered["visits FINAL"] == redelivered["visits argMax"] == len(rows)
        assert redelivered["visits_by_venue FINAL"] == len(rows)
        stored = db.execute("SELECT visit_id, argMax(t_out, version), max(version) FROM visits "
                            "WHERE visit_id IN %(ids)s GROUP BY visit_id", {"ids": ids})
        assert sorted((str(v), int(t.timestamp()), int(ver)) for v, t, ver in stored) == sorted(
            (str(r[0]), int(r[4]), int(r[7])) for r in rows)  # type: ignore[call-overload]
        # Sharded by person over both shards, each shard's rows on both of its replicas.
        per_server = {}
        for node in cluster.nodes.clickhouse:
            local = connect(node.own.as_account(clickhouse="admin").model_copy(
                update={"clickhouse_database": cluster.settings.clickhouse_database}))
            try:
                local.execute("SYSTEM SYNC REPLICA visits_local")
                per_server[node.name] = int(local.execute(
                    "SELECT count() FROM visits_local WHERE visit_id IN %(ids)s", {"ids": ids})[0][0])
            finally:
                local.close()
        print(f"visits_local rows per server: {per_server}")
        first, second, third, fourth = per_server.values()
        assert first == second > 0 and third == fourth > 0 and first + third == 2 * len(rows)
    finally:
        sink.close()
        db.close()
