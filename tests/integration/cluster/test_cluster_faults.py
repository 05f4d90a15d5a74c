"""Faults on the cluster profile (issue 12, item 4), each with 100,000+ scans flowing, against the reference.

One cluster for the module (tests/cluster_fixtures.py: ZooKeeper, 3 Kafka nodes, 2 x 2 ClickHouse 18.16
servers on their own ports). Each test has a pipeline of its own (topics with replication 3 and
``min.insync.replicas`` 2, a replicated database, its own consumer group and worker processes) and
about 104,000 generated scans (8,000 people, 400 venues, shuffled, 2% sent twice) flowing through it
while two faults hit it, one after the other (two faults per flow keeps the module within its time
budget; each fault has its own checks and figures):

- Kafka side, scans posted to ingest over HTTP by devices, two workers:
  1. kill -9 of the broker leading most ``scans`` partitions: ingest answers only 202 or 503 with
     Retry-After, every scan answered 202 is in ClickHouse exactly once;
  2. kill -9 of one of the two workers: its partitions move to the other.
- ClickHouse side, scans produced straight to Kafka, one worker and a trace API:
  3. kill -9 of a ClickHouse server (the one every client tries first): traces keep answering (from the
     other replica), the worker keeps writing, the restarted server catches up (its ``system.replicas``
     queues empty, its tables as full as its replica's);
  4. ZooKeeper stopped for 20 s while the last 40% of the scans flow in (held back until then, so the
     fault meets scans to write on a machine of any speed): inserts wait and retry, nothing lost after.

Each test ends with the stored visits (``visits`` and ``visits_by_venue`` through their Distributed
tables, latest version per visit) equal to the reference visits (tests/unit/streams/reference.py) of
the acknowledged scans, and leaves the cluster whole. Times are printed (``-s``), not asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.cluster.faults import (
    ClusterPipeline,
    Devices,
    Workload,
    in_sync_replicas,
    kill_9,
    local_rows,
    partition_leaders,
    replication_settled,
    workload,
)
from tests.integration.streams.harness import as_map, assert_same, metric
from tests.unit.trace_api import reference as trace_ref
from truyvet.auth import Role
from truyvet.events import Topics
from truyvet.stack.cluster import ddl_stalled
from truyvet.stack.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = 60 * 60


@pytest.fixture()
def pipeline(cluster) -> Iterator[ClusterPipeline]:  # noqa: ANN001
    made = ClusterPipeline(cluster, cluster.settings.data_dir / "test-runs" / "faults",
                           INGEST_PRODUCE_TIMEOUT_SECONDS="3", INGEST_RETRY_AFTER_SECONDS="1",
                           INGEST_RATE_LIMIT_SCANS_PER_SECOND="1000000", INGEST_RATE_LIMIT_BURST="1000000",
                           STREAMS_SESSION_TIMEOUT_SECONDS="6")
    yield made
    made.stop_all()
    # The cluster stays whole for the next test: every node running again, every replica settled.
    cluster.nodes.up()
    from truyvet.stack.clickhouse import drop_databases

    drop_databases(cluster.settings, made.database)


def _check_visits(p: ClusterPipeline, load: Workload, acked, figures: dict[str, float], began: float) -> None:  # noqa: ANN001
    expected = load.reference(acked)
    for table in ("visits", "visits_by_venue"):
        assert_same(p, as_map(p.visits(table)), expected, acked)
    figures["visits checked"] = len(expected)
    figures["total (s)"] = time.monotonic() - began


def _report(name: str, figures: dict[str, float]) -> None:
    print(f"\n{name}:\n" + "\n".join(f"  {k}: {v:.1f}" if isinstance(v, float) else f"  {k}: {v}"
                                    for k, v in figures.items()))


def test_kill_9_of_the_leading_broker_then_of_one_of_two_workers(cluster, pipeline: ClusterPipeline) -> None:  # noqa: ANN001
    began, figures = time.monotonic(), {}
    load = workload(121, pipeline.name)
    pipeline.create(load.venues)
    pipeline.start_worker("worker-a")
    pipeline.start_worker("worker-b")
    devices = Devices(pipeline.start_service("ingest"), pipeline.token(Role.device))
    devices.start(load.scans)
    figures["scans"] = len(load.scans)
    try:
        # Fault 1: the broker leading most scans partitions.
        wait_until(lambda: devices.acked_count() >= len(load.scans) * 3 // 10, timeout=300,
                   what="30% acknowledged", interval=0.05)
        topic = pipeline.settings.topic(Topics.SCANS)
        leaders = partition_leaders(cluster.settings, topic)
        victim_id = max(set(leaders.values()), key=list(leaders.values()).count)
        victim = cluster.nodes.kafka[victim_id - 1]
        pid = victim.procs.pid(victim.name)
        assert pid is not None
        figures["1: acked at the broker kill"] = devices.acked_count()
        figures[f"1: partitions led by the killed broker (kafka-{victim_id})"] = list(leaders.values()).count(victim_id)
        kill_9(pid, victim.name)
        killed = time.monotonic()
        answers_before = devices.answers.get("202", 0)
        wait_until(lambda: devices.answers.get("202", 0) > answers_before + 3, timeout=120,
                   what="ingest acknowledging again after the broker kill")
        figures["1: kill -> ingest acknowledging again (s)"] = time.monotonic() - killed
        moved = partition_leaders(cluster.settings, topic)
        assert victim_id not in moved.values(), f"a partition still led by the dead broker: {moved}"
        victim.start(timeout=0)  # back in the background; it rejoins the in-sync replicas by itself

        # Fault 2: one of the two workers, once 60% are acknowledged and it is writing.
        b_rows = lambda: metric(pipeline.metrics("worker-b") or {}, "truyvet_streams_visit_rows_written_total")  # noqa: E731
        wait_until(lambda: devices.acked_count() >= len(load.scans) * 6 // 10 and b_rows() >= 5_000, timeout=300,
                   what="60% acknowledged and worker-b writing", interval=0.05)
        figures["2: rows written at the worker kill (worker-b's)"] = f"{pipeline.written_rows():.0f} ({b_rows():.0f})"
        pipeline.kill("worker-b")
        killed = time.monotonic()
        wait_until(devices.done, timeout=600, what="every batch acknowledged")
        pipeline.wait_caught_up(timeout=600, workers=("worker-a",))
        figures["2: worker kill -> worker-a caught up alone (s)"] = time.monotonic() - killed
        figures["answers"] = dict(sorted(devices.answers.items()))  # type: ignore[assignment]
        assert set(devices.answers) <= {"202", "503", "transport"}, f"ingest answered {devices.answers}"
        assert len({s.scan_id for s in devices.acked}) == len({s.scan_id for s in load.scans})
        _check_visits(pipeline, load, devices.acked, figures, began)
        wait_until(lambda: min(in_sync_replicas(cluster.settings, topic)) == 3, timeout=180,
                   what="the restarted broker back in every scans partition's in-sync replicas")
    finally:
        _report("kill -9 of the leading Kafka broker, then of one of two workers", figures)


@pytest.mark.timeout(900)  # its own waits fail first, with what they saw (the lag per partition)
def test_kill_9_of_a_clickhouse_server_then_zookeeper_stopped_20_s(cluster, pipeline: ClusterPipeline) -> None:  # noqa: ANN001
    began, figures = time.monotonic(), {}
    load = workload(122, pipeline.name)
    pipeline.create(load.venues)
    pipeline.start_worker()
    trace_url = pipeline.start_service("trace")
    epi = pipeline.token(Role.epidemiologist)
    case = next(s for s in load.scans if s.direction == "in")
    start, end = case.t - 6 * 3600, case.t + 12 * 3600
    r = httpx.post(f"{trace_url}/v1/cases", headers=epi, timeout=60, json={
        "person_id": case.person_id, "infectious_from": datetime.fromtimestamp(start, UTC).isoformat(),
        "infectious_to": datetime.fromtimestamp(end, UTC).isoformat()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    second_part = threading.Event()  # the last 40% of the scans flow only once ZooKeeper is stopped
    producing = pipeline.produce_in_background(load.scans, hold_after=len(load.scans) * 6 // 10 // 5000 * 5000,
                                               release=second_part)
    settings = cluster.settings
    victim, sibling = cluster.nodes.clickhouse[0], cluster.nodes.clickhouse[1]  # shard 1's two replicas
    retries = lambda: metric(pipeline.metrics() or {}, "truyvet_streams_clickhouse_retries_total")  # noqa: E731
    try:
        # Fault 3: the ClickHouse server every client tries first.
        wait_until(lambda: pipeline.written_rows() >= 15_000, timeout=300, what="15,000 visit rows written")
        pid = victim.server_pid()
        assert pid is not None
        at_kill = pipeline.written_rows()
        figures["3: rows written at the server kill"] = at_kill
        kill_9(pid, victim.name)
        killed = time.monotonic()
        answers: dict[int, int] = {}
        while time.monotonic() - killed < 10 or not answers.get(200):  # traces asked while it is down
            code = httpx.get(f"{trace_url}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 1},
                             timeout=60).status_code
            answers[code] = answers.get(code, 0) + 1
            assert time.monotonic() - killed < 120, f"no trace answered while {victim.name} was down: {answers}"
            time.sleep(0.2)
        figures["3: trace answers while the server was down"] = dict(answers)  # type: ignore[assignment]
        figures["3: rows written while it was down"] = pipeline.written_rows() - at_kill
        restart = time.monotonic()
        victim.start()
        figures["3: server restart (s)"] = time.monotonic() - restart
        wait_until(lambda: replication_settled(settings, victim, pipeline.database), timeout=300,
                   what=f"{victim.name} replication queue empty", interval=0.5)
        figures["3: restart -> its replication queue empty (s)"] = time.monotonic() - restart
        assert set(answers) == {200}, f"traces failed while a server was down: {answers}"
        assert figures["3: rows written while it was down"] > 0, "the worker wrote nothing while it was down"

        # Fault 4: ZooKeeper stopped for 20 s, while the rest of the scans (40%) flow in.
        retries_before, at_stop = retries(), pipeline.written_rows()
        figures["4: rows written at the ZooKeeper stop"] = at_stop
        assert cluster.nodes.zookeeper.stop()
        stopped = time.monotonic()
        second_part.set()
        wait_until(lambda: pipeline.lag() > 0, timeout=60, what="scans waiting while ZooKeeper is down")
        # Down for 20 s, and until the worker felt it (an insert refused and retried) or all is written.
        wait_until(lambda: time.monotonic() - stopped >= 20 and (retries() > retries_before or pipeline.lag() == 0),
                   timeout=120, what="20 s of ZooKeeper outage felt by the worker", interval=0.2)
        figures["4: ZooKeeper down (s)"] = time.monotonic() - stopped
        figures["4: insert retries while it was down"] = retries() - retries_before
        figures["4: rows written while it was down"] = pipeline.written_rows() - at_stop
        restart = time.monotonic()
        cluster.nodes.zookeeper.start()
        producing.join(timeout=300)
        figures["4: scans in Kafka when ZooKeeper was back + producing"] = pipeline.produced
        figures["4: ZooKeeper back -> all scans in Kafka (s)"] = time.monotonic() - restart
        assert not producing.is_alive(), "the scans were not all in Kafka 300 s after ZooKeeper came back"
        pipeline.wait_caught_up(timeout=420)
        figures["4: ZooKeeper back -> worker caught up (s)"] = time.monotonic() - restart
        assert figures["4: insert retries while it was down"] > 0, "no insert waited for ZooKeeper"

        def caught_up() -> bool:
            db = pipeline.database
            return all(replication_settled(settings, n, db) for n in cluster.nodes.clickhouse) and all(
                local_rows(settings, victim, db, t) == local_rows(settings, sibling, db, t)
                for t in ("visits_local", "visits_by_venue_local"))

        wait_until(caught_up, timeout=300, what=f"every replica settled, {victim.name} as full as {sibling.name}",
                   interval=0.5)
        figures["replicas settled and equal after ZooKeeper came back (s)"] = time.monotonic() - restart
        # compared once every replica has settled: a Distributed read may use a replica still behind
        _check_visits(pipeline, load, load.scans, figures, began)
        visits = [trace_ref.RefVisit(v.visit_id, v.person_id, v.venue_id, v.t_in, v.t_out)
                  for v in load.reference().values()]
        expected = trace_ref.expected_contacts(visits, case.person_id, start, end, window=WINDOW, min_overlap=0,
                                               depth=1)
        r = httpx.get(f"{trace_url}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 1}, timeout=60)
        assert r.status_code == 200, r.text
        assert sorted(c["person_id"] for c in r.json()["contacts"]) == sorted(expected)
        figures["contacts of the case (equal to the reference)"] = len(expected)
    finally:
        # 18.16's ON CLUSTER DDL worker may have ended while ZooKeeper was away (test_cluster_ddl.py):
        # `truyvet up --cluster` restarts those servers, so the run's database can be dropped ON CLUSTER.
        figures["servers whose DDL worker ended (restarted by up)"] = \
            [n.name for n in cluster.nodes.clickhouse if ddl_stalled(n)]  # type: ignore[assignment]
        cluster.nodes.up()
        _report("kill -9 of a ClickHouse server, then ZooKeeper stopped for 20 s", figures)
