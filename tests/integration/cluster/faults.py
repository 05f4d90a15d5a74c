"""Helpers of the cluster fault tests (test_cluster_faults.py): a pipeline of its own on the shared cluster,
100,000+ generated scans with their reference visits, devices posting to ingest, and what the cluster
tells about itself (partition leaders, replication queues)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kafka import KafkaAdminClient

from tests.integration.streams.harness import Pipeline, stay_function
from tests.unit.streams import reference as visits_ref
from tests.unit.streams.scenarios import VenueSpec, generate, make_venues, scan_json, shuffled, with_resends
from truyvet.auth import Role, create_token
from truyvet.kafka_clients import client_kwargs
from truyvet.schema import connect
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.clickhouse import ClickHouseNode
from truyvet.stack.processes import alive, free_port, wait_until
from truyvet.stack.services import app_services, http_ok

PERSONS = int(os.environ.get("CLUSTER_FAULTS_PERSONS", "8000"))  # ~104,000 scans with 2% resends
VENUES = 400
DAY = 86400


@dataclass(frozen=True)
class Workload:
    venues: list[VenueSpec]
    scans: list[visits_ref.RefScan]  # shuffled, with resends

    def reference(self, acked: Sequence[visits_ref.RefScan] | None = None) -> dict[str, visits_ref.RefVisit]:
        return visits_ref.reference_visits(self.scans if acked is None else acked,
                                           stay_for=stay_function(self.venues))


def workload(seed: int, prefix: str) -> Workload:
    """Scans of ``PERSONS`` people over 6 days ending before now, shuffled, 2% sent twice."""
    rng = random.Random(seed)
    venues = make_venues(rng, VENUES, prefix=f"{prefix}v")
    start = int(time.time()) - 6 * DAY
    scans = generate(rng, persons=PERSONS, venues=venues, start=start, visits_per_person=8, prefix=f"{prefix}p")
    assert max(s.t for s in scans) < time.time(), "a generated scan lies in the future"
    return Workload(venues, with_resends(rng, shuffled(rng, scans), 0.02))


class ClusterPipeline(Pipeline):
    """A :class:`Pipeline` (own topics, database, consumer group) on the cluster, which can also run an
    ingest API and a trace API of its own."""

    def __init__(self, cluster, run_dir: Path, **extra_env: str) -> None:  # noqa: ANN001
        profile = {k: v for k, v in cluster.env().items()
                   if k in ("TRUYVET_PROFILE", "TRUYVET_CLICKHOUSE_ALT_HOSTS", "TRUYVET_CLICKHOUSE_CLUSTER",
                            "TRUYVET_DATA_DIR", "PYTHONPATH")}
        super().__init__(cluster.settings, run_dir, extra_env={**profile, **extra_env})
        self.ports: dict[str, int] = {}

    def start_service(self, name: str) -> str:
        """Start this pipeline's ``ingest`` or ``trace``; return its URL once healthy."""
        port = self.ports.setdefault(name, free_port())
        settings = self.settings.model_copy(update={f"{name}_port": port})
        service = next(s for s in app_services(settings) if s.name == name)
        env = {**self.env_base(), f"TRUYVET_{name.upper()}_PORT": str(port)}
        self.procs.start(name, service.argv, env=env, cwd=PROJECT_ROOT)
        wait_until(lambda: http_ok(service.health_url), timeout=90, what=f"{name} of {self.name}")
        return service.address

    def env_base(self) -> dict[str, str]:
        return {"TRUYVET_TOPIC_PREFIX": self.prefix, "TRUYVET_CLICKHOUSE_DATABASE": self.database,
                "TRUYVET_CLICKHOUSE_PORT": str(self.settings.clickhouse_port),
                "TRUYVET_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap, "STREAMS_APP_ID": self.app_id,
                **self.extra_env}

    def stop_all(self) -> None:
        for name in list(self.ports):
            self.procs.stop(name)
        super().stop_all()

    def token(self, role: Role) -> dict[str, str]:
        db = self.db()
        try:
            return {"Authorization": f"Bearer {create_token(db, role=role, name=f'faults-{role.value}')}"}
        finally:
            db.close()

    def produce_in_background(self, scans: Sequence[visits_ref.RefScan], chunk: int = 5000, *, hold_after: int = 0,
                              release: threading.Event | None = None) -> threading.Thread:
        """Kafka-native intake (acks=all), in chunks; ``self.produced`` counts what Kafka confirmed. With
        ``hold_after`` and ``release``, the scans from ``hold_after`` on wait until ``release`` is set (a
        fault can then meet scans still flowing, however fast the machine works through the first part)."""
        self.produced = 0

        def run() -> None:
            for i in range(0, len(scans), chunk):
                if release is not None and i >= hold_after:
                    release.wait()
                self.produced += self.produce(scans[i:i + chunk])

        thread = threading.Thread(target=run, daemon=True, name=f"produce-{self.name}")
        thread.start()
        return thread

    def written_rows(self) -> float:
        """Visit rows the worker(s) wrote so far (their metrics)."""
        from tests.integration.streams.harness import metric

        return sum(metric(self.metrics(n) or {}, "truyvet_streams_visit_rows_written_total")
                   for n in self.metrics_ports)


@dataclass
class Devices:
    """Devices posting batches to ingest until each is answered 202, resending on 503 or no connection."""

    url: str
    headers: dict[str, str]
    acked: list[visits_ref.RefScan] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # "202", "503", "transport", "503 without Retry-After"...
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def count(self, what: str) -> None:
        with self.lock:
            self.answers[what] = self.answers.get(what, 0) + 1

    def post(self, http: httpx.Client, batch: Sequence[visits_ref.RefScan]) -> None:
        body = b"[" + b",".join(scan_json(s) for s in batch) + b"]"
        headers = {**self.headers, "Content-Type": "application/json"}
        while True:
            try:
                r = http.post(f"{self.url}/v1/scans/batch", headers=headers, content=body)
            except httpx.TransportError:
                self.count("transport")
                time.sleep(0.25)
                continue
            if r.status_code == 202:
                bad = {int(item["index"]) for item in r.json()["rejected"]}
                with self.lock:
                    self.acked.extend(s for i, s in enumerate(batch) if i not in bad)
                self.count("202" if not bad else "202 with rejections")
                return
            if r.status_code == 503 and r.headers.get("Retry-After"):
                self.count("503")
                time.sleep(0.25)  # a device honours Retry-After; the test resends sooner to finish sooner
                continue
            self.count(f"{r.status_code}{' without Retry-After' if r.status_code == 503 else ''}")
            time.sleep(0.25)

    def start(self, scans: Sequence[visits_ref.RefScan], *, devices: int = 3, batch: int = 1000) -> None:
        batches = [scans[i:i + batch] for i in range(0, len(scans), batch)]

        def run(mine: list[Sequence[visits_ref.RefScan]]) -> None:
            with httpx.Client(timeout=60) as http:
                for b in mine:
                    self.post(http, b)

        for d in range(devices):
            thread = threading.Thread(target=run, args=(batches[d::devices],), daemon=True, name=f"device-{d}")
            thread.start()
            self.threads.append(thread)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def done(self) -> bool:
        return not any(t.is_alive() for t in self.threads)


def partition_leaders(settings: CommonSettings, topic: str) -> dict[int, int]:
    """partition -> leader node id."""
    admin = KafkaAdminClient(**client_kwargs(settings.as_account(kafka="admin")), request_timeout_ms=10000)
    try:
        (described,) = admin.describe_topics([topic])
        return {int(p["partition_index"]): int(p["leader_id"]) for p in described["partitions"]}
    finally:
        admin.close()


def in_sync_replicas(settings: CommonSettings, topic: str) -> list[int]:
    admin = KafkaAdminClient(**client_kwargs(settings.as_account(kafka="admin")), request_timeout_ms=10000)
    try:
        (described,) = admin.describe_topics([topic])
        return [len(p["isr_nodes"]) for p in described["partitions"]]
    finally:
        admin.close()


def kill_9(pid: int, what: str) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout=15, what=f"{what} (pid {pid}) gone after SIGKILL")


def node_client(settings: CommonSettings, node: ClickHouseNode, database: str):  # noqa: ANN201
    """A client of one server alone (no alternates): what that server holds itself."""
    return connect(node.own.as_account(clickhouse="admin").model_copy(update={"clickhouse_database": database}))


def replication_settled(settings: CommonSettings, node: ClickHouseNode, database: str) -> bool:
    """The server's replicated tables of ``database`` are writable, connected and have nothing to fetch."""
    db = node_client(settings, node, database)
    try:
        rows = db.execute("SELECT count(), sum(is_readonly), sum(queue_size), sum(inserts_in_queue), "
                          "sum(absolute_delay) FROM system.replicas WHERE database = %(d)s", {"d": database})
        tables, readonly, queue, inserts, delay = (int(x) for x in rows[0])
        return tables > 0 and readonly == 0 and queue == 0 and inserts == 0 and delay == 0
    finally:
        db.close()


def local_rows(settings: CommonSettings, node: ClickHouseNode, database: str, table: str) -> int:
    db = node_client(settings, node, database)
    try:
        return int(db.execute(f"SELECT count() FROM {table}")[0][0])
    finally:
        db.close()
