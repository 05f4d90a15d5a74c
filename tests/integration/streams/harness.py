"""A stream pipeline of its own for one test: topics, database, venues, worker processes, checks.

Each :class:`Pipeline` has a unique topic prefix, ClickHouse database and consumer group, so tests
never see each other's data, and starts/kills only the worker processes it started itself. Scans
are produced straight to ``scans`` with kafka-python in big batches (the contract allows any Kafka
client there); "caught up" means the worker group's committed offsets reached the end of both the
intake topic, and an offset is committed only after ClickHouse accepted the rows of every record
before it.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from streams.config import StreamsSettings
from tests.integration.topics import group_lags
from tests.unit.streams.reference import MINUTE, RefScan, RefVisit
from tests.unit.streams.scenarios import VenueSpec, scan_json
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs
from truyvet.schema import connect
from truyvet.schema.db import DriverDatabase
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.kafka import ensure_topics
from truyvet.stack.processes import ProcessDir, alive, free_port, wait_until

logger = logging.getLogger(__name__)

VENUE_COLUMNS = ["venue_id", "name", "category", "ward_code", "address", "phone", "default_stay_minutes",
                 "valid_from", "valid_until", "created_at", "updated_at"]
EPOCH = datetime.fromtimestamp(0, UTC)


def stay_function(venues: Sequence[VenueSpec]):  # noqa: ANN201 - a callable venue_id -> seconds
    """The default stay the worker will use for each venue (own value, else its category's, else 60 min)."""
    categories = {c.value: m for c, m in StreamsSettings().category_stay_minutes.items()}
    stays = {v.venue_id: (v.default_stay_minutes or categories.get(v.category, 60)) * MINUTE for v in venues}
    return stays.__getitem__


@dataclass
class Pipeline:
    base: CommonSettings
    run_dir: Path
    name: str = field(default_factory=lambda: "s" + secrets.token_hex(3))
    clickhouse_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = f"{self.base.topic_prefix}{self.name}-"
        self.database = f"{self.base.clickhouse_database}_{self.name}"
        self.app_id = f"truyvet-{self.name}"
        updates = {"topic_prefix": self.prefix, "clickhouse_database": self.database}
        if self.clickhouse_port is not None:
            updates["clickhouse_port"] = self.clickhouse_port
        self.settings = self.base.model_copy(update=updates)
        self.procs = ProcessDir(self.run_dir / self.name)
        self.metrics_ports: dict[str, int] = {}
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    # -- setup ------------------------------------------------------------------------------------
    def create(self, venues: Sequence[VenueSpec]) -> None:
        ensure_topics(self.settings)
        db = ensure_database(self.settings)
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            db.insert("venues", VENUE_COLUMNS, [
                (v.venue_id, v.venue_id, v.category, "00001", "", "", v.default_stay_minutes, EPOCH, EPOCH, now, now)
                for v in venues])
        finally:
            db.close()

    def env(self, name: str) -> dict[str, str]:
        return {"TRUYVET_TOPIC_PREFIX": self.prefix, "TRUYVET_CLICKHOUSE_DATABASE": self.database,
                "TRUYVET_CLICKHOUSE_PORT": str(self.settings.clickhouse_port),
                "TRUYVET_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "STREAMS_APP_ID": self.app_id, "TRUYVET_WORKER_METRICS_PORT": str(self.metrics_ports[name]),
                # The worker's own ClickHouse and Kafka accounts, as `truyvet up` runs it.
                "TRUYVET_CLICKHOUSE_USER": "worker", "TRUYVET_KAFKA_USERNAME": "worker",
                "PYTHONPATH": str(PROJECT_ROOT), **self.extra_env}

    # -- workers ----------------------------------------------------------------------------------
    def start_worker(self, name: str = "worker") -> int:
        self.metrics_ports.setdefault(name, free_port())
        workdir = self.procs.run.parent / f"{name}-cwd"  # faust writes its data dir under the cwd
        workdir.mkdir(parents=True, exist_ok=True)
        pid = self.procs.start(name, [sys.executable, "-m", "streams"], env=self.env(name), cwd=workdir)
        wait_until(lambda: self.metrics(name) is not None, timeout=60, what=f"worker {name} metrics")
        return pid

    def kill(self, name: str = "worker") -> None:
        """``kill -9`` of a worker we started (its process group: the worker and nothing else)."""
        pid = self.procs.pid(name)
        assert pid is not None, f"{name} is not running"
        os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), timeout=10, what=f"{name} gone")
        self.procs.pid_file(name).unlink(missing_ok=True)

    def stop_all(self) -> None:
        for name in list(self.metrics_ports):
            self.procs.stop(name)
        for client in (self._producer, self._admin, self._consumer):
            if client is not None:
                client.close()

    def log(self, name: str = "worker") -> str:
        return self.procs.log_file(name).read_text(errors="replace")

    def metrics(self, name: str = "worker") -> dict[str, float] | None:
        """The worker's /metrics as {sample name with labels: value}; None while it is not serving."""
        try:
            url = f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                text = response.read().decode()
        except OSError:
            return None
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    # -- data -------------------------------------------------------------------------------------
    def produce(self, scans: Iterable[RefScan], *, keyed: bool = True) -> int:
        if self._producer is None:
            self._producer = KafkaProducer(**client_kwargs(self.settings), acks="all",
                                           linger_ms=20, batch_size=512 * 1024, compression_type=None,
                                           max_request_size=8 * 1024 * 1024)
        topic = self.settings.topic(Topics.SCANS)
        n = 0
        for s in scans:
            self._producer.send(topic, key=s.person_id.encode() if keyed else None, value=scan_json(s))
            n += 1
        self._producer.flush(timeout=120)
        return n

    def lag(self) -> int:
        """Records of the intake topic not yet committed by the worker group."""
        return sum(self.lags().values())

    def lags(self) -> dict[int, int]:
        """Per partition of the intake topic: records not yet committed by the worker group."""
        topic = self.settings.topic(Topics.SCANS)
        if self._admin is None:
            self._admin = KafkaAdminClient(**client_kwargs(self.settings), request_timeout_ms=10000)
            self._consumer = KafkaConsumer(**client_kwargs(self.settings))
        assert self._consumer is not None
        return group_lags(self._admin, self._consumer, StreamsSettings(app_id=self.app_id).group("scans"), topic)

    def wait_caught_up(self, *, timeout: float = 180, workers: Sequence[str] = ("worker",),
                       expected: dict[str, RefVisit] | None = None) -> None:
        """Until the group's committed offsets reach the ends of the topics (workers alive meanwhile).

        A worker that processed everything but left a partition's commit behind fails here: the next
        restart would replay from there (``expected`` is accepted for the callers' readability). On a
        timeout the message has the lag per partition sampled every 15 s, and the workers' last lines.
        """
        began, samples = time.monotonic(), []

        def done() -> bool:
            for name in workers:
                pid = self.procs.pid(name)
                assert pid is not None, f"worker {name} died:\n{self.log(name)[-3000:]}"
            lags = self.lags()
            if not samples or time.monotonic() - began >= 15 * len(samples):
                samples.append(f"{time.monotonic() - began:5.0f} s: {sum(lags.values())} "
                               + str({p: n for p, n in sorted(lags.items()) if n}))
            return sum(lags.values()) == 0

        try:
            wait_until(done, timeout=timeout, what="worker caught up (committed offsets at the ends)", interval=0.5)
        except Exception as exc:
            noise = ("blocking the event loop", "in the clear")
            tails = "\n".join(f"--- {name}, last lines:\n" + "\n".join(
                [line for line in self.log(name).splitlines() if not any(n in line for n in noise)][-25:])
                for name in workers)
            raise AssertionError(f"{exc}\nlag per partition (records not committed):\n" + "\n".join(samples)
                                 + f"\n{tails}") from exc

    def db(self) -> DriverDatabase:
        return connect(self.settings)

    def visits(self, table: str = "visits") -> list[RefVisit]:
        """What a reader sees: the latest version of every visit, tombstones removed afterwards.

        argMax over the version, not FINAL: several times faster on 18.16 at scale
        (tests/benchmarks/test_streams_readers.py); sorting-key columns are the same in every version.
        """
        db = self.db()
        try:
            rows = db.execute(f"SELECT visit_id, any(person_id), any(venue_id), any(t_in), argMax(t_out, version), "
                              f"argMax(deleted, version) FROM {table} GROUP BY visit_id")
        finally:
            db.close()
        return [RefVisit(v, p, ven, int(a.timestamp()), int(b.timestamp())) for v, p, ven, a, b, d in rows if not d]


def as_map(visits: Iterable[RefVisit]) -> dict[str, RefVisit]:
    out: dict[str, RefVisit] = {}
    for v in visits:
        assert v.visit_id not in out, f"visit {v.visit_id} seen twice"
        out[v.visit_id] = v
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?", key)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
    return total


def wait_for(check, *, timeout: float, what: str) -> None:  # noqa: ANN001
    wait_until(check, timeout=timeout, what=what, interval=0.25)


def now_epoch() -> int:
    return int(time.time())


def assert_same(p: Pipeline, got: dict[str, RefVisit], expected: dict[str, RefVisit],
                arrivals: Sequence[RefScan]) -> None:
    """``got == expected``; on a difference, the scans and every stored row version of the people
    concerned go to ``test-artifacts/`` first, so a failure can be explained."""
    if got == expected:
        return
    people = sorted({v.person_id for k, v in got.items() if expected.get(k) != v}
                    | {v.person_id for k, v in expected.items() if got.get(k) != v})
    db = p.db()
    try:
        rows = db.execute("SELECT visit_id, person_id, venue_id, toUInt32(t_in), toUInt32(t_out), version, deleted "
                          "FROM visits WHERE person_id IN %(people)s ORDER BY person_id, visit_id, version",
                          {"people": tuple(people[:50])})
    finally:
        db.close()
    import orjson

    chosen = set(people[:50])
    dump = {"pipeline": p.name, "people": people,
            "arrivals": [[i, s.scan_id, s.person_id, s.venue_id, s.t, s.direction]
                         for i, s in enumerate(arrivals) if s.person_id in chosen],
            "rows": [list(r) for r in rows],
            "expected": [list(v.__dict__.values()) for v in expected.values() if v.person_id in chosen]}
    out = PROJECT_ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / f"streams-mismatch-{p.name}.json").write_bytes(orjson.dumps(dump, option=orjson.OPT_INDENT_2))
    missing = len(set(expected) - set(got))
    extra = len(set(got) - set(expected))
    changed = sum(1 for k in set(got) & set(expected) if got[k] != expected[k])
    raise AssertionError(f"{p.name}: {missing} visits missing, {extra} extra, {changed} different, "
                         f"people {people[:10]}; details in test-artifacts/streams-mismatch-{p.name}.json")
