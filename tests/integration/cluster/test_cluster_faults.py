"""Faults on the cluster profile (issue 12, item 4), each with 100,000+ scans flowing, against the reference.

One cluster for the module (tests/cluster_fixtures.py: ZooKeeper, 3 Kafka nodes, 2 x 2 ClickHouse 18.16
servers on their own ports); each test has a pipeline of its own (topics with replication 3 and
``min.insync.replicas`` 2, a replicated database, its own consumer group and worker processes) and
about 104,000 generated scans (8,000 people, 400 venues, shuffled, 2% sent twice). Each test ends with
the stored visits (``visits`` and ``visits_by_venue`` through their Distributed tables, latest version
per visit) equal to the reference visits (tests/unit/streams/reference.py) and leaves the cluster whole:

1. kill -9 of the Kafka broker leading most ``scans`` partitions while devices post to ingest: every
   scan answered 202 is in ClickHouse exactly once, ingest answers only 202 or 503 with Retry-After;
2. kill -9 of a ClickHouse server (the one every client tries first) while the worker writes: traces
   keep answering (from the other replica), nothing is lost, the restarted server catches up (its
   ``system.replicas`` queues empty, its tables as full as its replica's);
3. kill -9 of one of two workers: its partitions move to the other, visits still equal the reference;
4. ZooKeeper stopped for 20 s while the worker writes: inserts wait and retry, nothing lost after.

Times are printed (``-s``), not asserted.
"""

from __future__ import annotations

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
    from truyvet.stack.clickhouse import drop_database

    drop_database(cluster.settings, made.database)


def _check_visits(p: ClusterPipeline, load: Workload, acked, figures: dict[str, float], began: float) -> None:  # noqa: ANN001
    expected = load.reference(acked)
    for table in ("visits", "visits_by_venue"):
        assert_same(p, as_map(p.visits(table)), expected, acked)
    figures["visits checked"] = len(expected)
    figures["total (s)"] = time.monotonic() - began


def _report(name: str, figures: dict[str, float]) -> None:
    print(f"\n{name}:\n" + "\n".join(f"  {k}: {v:.1f}" if isinstance(v, float) else f"  {k}: {v}"
                                    for k, v in figures.items()))


def test_kill_9_of_the_broker_leading_most_scans_partitions(cluster, pipeline: ClusterPipeline) -> None:  # noqa: ANN001
    began, figures = time.monotonic(), {}
    load = workload(121, pipeline.name)
    pipeline.create(load.venues)
    pipeline.start_worker()
    devices = Devices(pipeline.start_service("ingest"), pipeline.token(Role.device))
    devices.start(load.scans)
    figures["scans"] = len(load.scans)
    wait_until(lambda: devices.acked_count() >= len(load.scans) * 2 // 5, timeout=300, what="40% acknowledged",
               interval=0.05)
    topic = pipeline.settings.topic(Topics.SCANS)
    leaders = partition_leaders(cluster.settings, topic)
    victim_id = max(set(leaders.values()), key=list(leaders.values()).count)
    victim = cluster.nodes.kafka[victim_id - 1]
    pid = victim.procs.pid(victim.name)
    assert pid is not None
    figures["acked at kill"] = devices.acked_count()
    figures[f"partitions led by the killed broker (kafka-{victim_id})"] = list(leaders.values()).count(victim_id)
    kill_9(pid, victim.name)
    killed = time.monotonic()
    wait_until(devices.done, timeout=600, what="every batch acknowledged")
    figures["intake done after the kill (s)"] = time.monotonic() - killed
    pipeline.wait_caught_up(timeout=600)
    figures["worker caught up after the kill (s)"] = time.monotonic() - killed
    moved = partition_leaders(cluster.settings, topic)
    assert victim_id not in moved.values(), f"a partition still led by the dead broker: {moved}"
    figures["answers"] = dict(sorted(devices.answers.items()))  # type: ignore[assignment]
    try:
        assert set(devices.answers) <= {"202", "503", "transport"}, f"ingest answered {devices.answers}"
        assert len({s.scan_id for s in devices.acked}) == len({s.scan_id for s in load.scans})
        _check_visits(pipeline, load, devices.acked, figures, began)
        restart = time.monotonic()
        victim.start()  # serving again; it rejoins the in-sync replicas in the background
        figures["restarted broker serving (s)"] = time.monotonic() - restart
        figures["scans partitions with 3 in-sync replicas right then"] = sum(
            1 for n in in_sync_replicas(cluster.settings, topic) if n == 3)
    finally:
        _report("kill -9 of a Kafka broker", figures)


def test_kill_9_of_a_clickhouse_server(cluster, pipeline: ClusterPipeline) -> None:  # noqa: ANN001
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
    producing = pipeline.produce_in_background(load.scans)
    wait_until(lambda: pipeline.written_rows() >= 20_000, timeout=300, what="20,000 visit rows written")
    victim, sibling = cluster.nodes.clickhouse[0], cluster.nodes.clickhouse[1]  # shard 1's two replicas
    pid = victim.server_pid()
    assert pid is not None
    figures["rows written at kill"] = pipeline.written_rows()
    kill_9(pid, victim.name)
    killed = time.monotonic()
    answers: dict[int, int] = {}
    while time.monotonic() - killed < 10 or not answers.get(200):  # traces asked while it is down
        code = httpx.get(f"{trace_url}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 1},
                         timeout=60).status_code
        answers[code] = answers.get(code, 0) + 1
        assert time.monotonic() - killed < 120, f"no trace answered while {victim.name} was down: {answers}"
        time.sleep(0.2)
    figures["trace answers while down"] = dict(answers)  # type: ignore[assignment]
    written_during = pipeline.written_rows() - figures["rows written at kill"]
    figures["rows written while down"] = written_during
    producing.join(timeout=300)
    restart = time.monotonic()
    victim.start()
    figures["server restart (s)"] = time.monotonic() - restart
    pipeline.wait_caught_up(timeout=600)
    figures["worker caught up after the kill (s)"] = time.monotonic() - killed
    settings = cluster.settings

    def caught_up() -> bool:
        return (replication_settled(settings, victim, pipeline.database)
                and all(local_rows(settings, victim, pipeline.database, t)
                        == local_rows(settings, sibling, pipeline.database, t)
                        for t in ("visits_local", "visits_by_venue_local")))

    wait_until(caught_up, timeout=300, what=f"{victim.name} caught up with {sibling.name}", interval=0.5)
    figures["restarted server caught up (s)"] = time.monotonic() - restart
    try:
        assert set(answers) == {200}, f"traces failed while a server was down: {answers}"
        assert written_during > 0, "the worker wrote nothing while the server was down"
        _check_visits(pipeline, load, load.scans, figures, began)
        visits = [trace_ref.RefVisit(v.visit_id, v.person_id, v.venue_id, v.t_in, v.t_out)
                  for v in load.reference().values()]
        expected = trace_ref.expected_contacts(visits, case.person_id, start, end, window=WINDOW, min_overlap=0,
                                               depth=1)
        r = httpx.get(f"{trace_url}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 1}, timeout=60)
        assert r.status_code == 200, r.text
        assert sorted(c["person_id"] for c in r.json()["contacts"]) == sorted(expected)
        figures["contacts of the case"] = len(expected)
    finally:
        _report("kill -9 of a ClickHouse server", figures)


def test_kill_9_of_one_of_two_workers(cluster, pipeline: ClusterPipeline) -> None:  # noqa: ANN001
    began, figures = time.monotonic(), {}
    load = workload(123, pipeline.name)
    pipeline.create(load.venues)
    pipeline.start_worker("worker-a")
    pipeline.start_worker("worker-b")
    producing = pipeline.produce_in_background(load.scans)
    wait_until(lambda: metric(pipeline.metrics("worker-b") or {}, "truyvet_streams_visit_rows_written_total")
               >= 5_000, timeout=300, what="worker-b writing")
    figures["rows written at kill"] = pipeline.written_rows()
    pipeline.kill("worker-b")
    killed = time.monotonic()
    producing.join(timeout=300)
    pipeline.wait_caught_up(timeout=600, workers=("worker-a",))
    figures["worker-a caught up alone after the kill (s)"] = time.monotonic() - killed
    try:
        _check_visits(pipeline, load, load.scans, figures, began)
    finally:
        _report("kill -9 of one of two workers", figures)


def test_zookeeper_stopped_for_20_seconds(cluster, pipeline: ClusterPipeline) -> None:  # noqa: ANN001
    began, figures = time.monotonic(), {}
    load = workload(124, pipeline.name)
    pipeline.create(load.venues)
    pipeline.start_worker()
    producing = pipeline.produce_in_background(load.scans)
    wait_until(lambda: pipeline.written_rows() >= 20_000, timeout=300, what="20,000 visit rows written")
    retries = lambda: metric(pipeline.metrics() or {}, "truyvet_streams_clickhouse_retries_total")  # noqa: E731
    retries_before = retries()
    figures["rows written at stop"] = pipeline.written_rows()
    assert cluster.nodes.zookeeper.stop()
    stopped = time.monotonic()
    # Down for 20 s, and until the worker felt it (an insert refused and retried) or the intake is written.
    wait_until(lambda: time.monotonic() - stopped >= 20 and (retries() > retries_before or pipeline.lag() == 0),
               timeout=120, what="20 s of ZooKeeper outage felt by the worker", interval=0.2)
    figures["ZooKeeper down (s)"] = time.monotonic() - stopped
    figures["insert retries while down"] = retries() - retries_before
    figures["rows written while down"] = pipeline.written_rows() - figures["rows written at stop"]
    restart = time.monotonic()
    cluster.nodes.zookeeper.start()
    producing.join(timeout=300)
    pipeline.wait_caught_up(timeout=600)
    figures["worker caught up after ZooKeeper came back (s)"] = time.monotonic() - restart
    try:
        assert figures["insert retries while down"] > 0, "no insert waited for ZooKeeper"
        _check_visits(pipeline, load, load.scans, figures, began)
        for node in cluster.nodes.clickhouse:
            wait_until(lambda n=node: replication_settled(cluster.settings, n, pipeline.database), timeout=120,
                       what=f"{node.name} replicas writable and settled")
        figures["replicas settled after ZooKeeper came back (s)"] = time.monotonic() - restart
    finally:
        _report("ZooKeeper stopped for 20 s", figures)
