"""End-to-end throughput of the stream worker vs the raw limit of this machine, in the same run.

``pytest tests/benchmarks/test_streams_throughput.py -m benchmark -s``; size with
``STREAMS_BENCH_SCANS`` (default 200,000) and ``STREAMS_BENCH_WORKERS`` (default 1).

- end to end: a worker (or several) on a fresh pipeline; the clock runs from the first scan produced
  to the moment the group's committed offsets reach the end of ``scans`` (an offset is committed
  only after ClickHouse accepted the visits of every scan before it), i.e. all visits visible. The
  scans are produced keyed by person (murmur2, as any default-partitioned client) with aiokafka's
  batch API (``acks=all``), while the worker already consumes: producing is inside the clock;
- raw limit: the same records produced beforehand to a topic of their own (not timed), then plain
  kafka-python consume (large fetches) + clickhouse-driver columnar insert of one row per record
  (JSON and the time parsed, no state, no checks), timed from the first poll to the last insert, in
  the same process: what this machine does with the same records and no processing;
- worker memory: peak resident set (VmHWM) of the worker process(es).
Figures go to BENCHMARKS.md (section ``streams-throughput``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_driver import Client
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.partitioner.default import murmur2

from tests.benchmarks.report import write_section
from tests.integration.streams.harness import Pipeline, as_map, metric, stay_function
from tests.unit.streams.reference import reference_visits
from tests.unit.streams.scenarios import generate, make_venues, scan_json
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs
from truyvet.schema import connect
from truyvet.schema.migrate import drop_database
from truyvet.settings import CommonSettings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.processes import wait_until

pytestmark = pytest.mark.benchmark

SCANS = int(os.environ.get("STREAMS_BENCH_SCANS", "200000"))
WORKERS = int(os.environ.get("STREAMS_BENCH_WORKERS", "1"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce(settings: CommonSettings, topic: str, partitions: int, payloads: list[tuple[bytes, bytes]]) -> None:
    """Produce keyed records with aiokafka's batch API (``acks=all``), partitioned like the default
    partitioner of Kafka clients (murmur2 of the key), all partitions' batches in flight at once."""

    async def run() -> None:
        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", max_batch_size=1024 * 1024,
                                    max_request_size=8 * 1024 * 1024)
        await producer.start()
        try:
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for key, value in payloads:
                by_partition.setdefault((murmur2(key) & 0x7FFFFFFF) % partitions, []).append((key, value))
            pending = []
            for partition, records in by_partition.items():
                batch = producer.create_batch()
                for key, value in records:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        pending.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(run())


def raw_limit(settings: CommonSettings, payloads: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """Seconds and CPU seconds (this process) for plain kafka-python consume + clickhouse-driver insert
    of the records (produced before)."""
    topic = settings.topic("raw-bench")
    admin = KafkaAdminClient(**client_kwargs(settings))
    admin.create_topics([NewTopic(topic, settings.scans_partitions, 1)])
    admin.close()
    produce(settings, topic, settings.scans_partitions, payloads)
    client = Client(host=settings.clickhouse_host, port=settings.clickhouse_port,
                    database=settings.clickhouse_database, user=settings.clickhouse_user,
                    password=settings.clickhouse_secret())
    client.execute("CREATE TABLE IF NOT EXISTS raw_scans (scan_id String, person_id String, venue_id String, "
                   "t DateTime('UTC'), direction String) ENGINE = MergeTree PARTITION BY toYYYYMMDD(t) "
                   "ORDER BY (person_id, t)")
    consumer = KafkaConsumer(**client_kwargs(settings), enable_auto_commit=False,
                             max_poll_records=20000, fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    consumer.assign([TopicPartition(topic, n) for n in range(settings.scans_partitions)])
    consumer.seek_to_beginning()
    started, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < len(payloads):
        polled = consumer.poll(timeout_ms=500, max_records=20000)
        docs = [orjson.loads(r.value) for records in polled.values() for r in records]
        if docs:
            columns = [[d["scan_id"] for d in docs], [d["person_id"] for d in docs], [d["venue_id"] for d in docs],
                       [int(datetime.fromisoformat(d["scanned_at"]).timestamp()) for d in docs],
                       [d["direction"] for d in docs]]
            client.execute("INSERT INTO raw_scans (scan_id, person_id, venue_id, t, direction) VALUES", columns,
                           columnar=True)
            done += len(docs)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    consumer.close()
    client.disconnect()
    return elapsed, cpu


def test_streams_throughput() -> None:
    base = CommonSettings()
    rng = random.Random(5)
    venues = make_venues(rng, 1000)
    start = int((datetime.now(UTC) - timedelta(days=4)).timestamp())
    scans = generate(rng, persons=SCANS // 13, venues=venues, start=start, visits_per_person=8)
    expected = reference_visits(scans, stay_for=stay_function(venues))

    run_dir = base.data_dir / "bench-streams"
    p = Pipeline(base.model_copy(update={"topic_prefix": f"bench{os.getpid()}-",
                                         "clickhouse_database": f"bench_streams_{os.getpid()}"}), run_dir)
    try:
        p.create(venues)
        names = ["worker"] + [f"worker-{i}" for i in range(1, WORKERS)]
        for name in names:
            p.start_worker(name)
        wait_until(lambda: sum(metric(p.metrics(n) or {}, "truyvet_streams_assigned_partitions",
                                          topic=p.settings.topic(Topics.SCANS)) for n in names)
                   == p.settings.scans_partitions, timeout=120, what="partitions assigned")
        payloads = [(s.person_id.encode(), scan_json(s)) for s in scans]
        cpu_before = sum(cpu_seconds(p.procs.pid(n) or 0) for n in names)
        started = time.perf_counter()
        produce(p.settings, p.settings.topic(Topics.SCANS), p.settings.scans_partitions, payloads)
        produced_s = time.perf_counter() - started
        p.wait_caught_up(timeout=3600, workers=names)
        e2e_s = time.perf_counter() - started
        pids = [p.procs.pid(n) for n in names]
        memory = [peak_rss_mib(pid) for pid in pids if pid]
        worker_cpu = sum(cpu_seconds(pid) for pid in pids if pid) - cpu_before
        got = as_map(p.visits())
        assert got == expected

        raw_settings = p.settings
        ensure_database(raw_settings).close()
        raw_s, raw_cpu = raw_limit(raw_settings, payloads)
    finally:
        p.stop_all()
        db = connect(base, database="default")
        drop_database(db, p.database)
        db.close()

    n = len(scans)
    e2e, raw = n / e2e_s, n / raw_s
    load = os.getloadavg()
    body = (f"{n:,} scans ({n // 13:,} persons, 1,000 venues, in time order) -> {len(expected):,} visits, "
            f"{WORKERS} worker process(es), Kafka, ClickHouse 18.16 and the producer on the same machine. "
            f"Load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (the machine is shared "
            "with other engineers' tests and benchmarks: figures are noisy and low).\n\n"
            "| measure | value |\n|---|---|\n"
            f"| end to end (produce -> all visits visible in ClickHouse) | **{e2e:,.0f} scans/s** ({e2e_s:.1f} s) |\n"
            f"| of which producing (aiokafka batches, acks=all; the worker consumes meanwhile) | {produced_s:.1f} s |\n"
            f"| raw limit (kafka-python consume + clickhouse-driver columnar insert, same records) | "
            f"**{raw:,.0f} scans/s** ({raw_s:.1f} s) |\n"
            f"| ratio end to end / raw | **{e2e / raw:.2f}** |\n"
            f"| worker peak RSS | {', '.join(f'{m:.0f} MiB' for m in memory)} |\n"
            f"| CPU per scan: worker(s) / raw path (independent of the load; 1 s of one core = 1,000,000 µs) | "
            f"{1e6 * worker_cpu / n:.0f} µs / {1e6 * raw_cpu / n:.0f} µs |\n"
            f"| what one free core would take at that CPU cost: worker / raw path | "
            f"{n / worker_cpu:,.0f} / {n / raw_cpu:,.0f} scans/s |\n\n"
            "Target was >= 20,000 scans/s end to end and >= 0.5 of raw; see the figures above for what "
            "holds. The worker is Python on aiokafka's public consumer: a batch (getmany) is processed, "
            "written, its changelog and notices confirmed, then committed, one batch at a time (faust runs "
            "the life cycle and timers). Per scan it pays the fetch (aiokafka decoding), parsing, the "
            "visit update, the changelog record, the ClickHouse row and the exposure notice; Kafka and "
            "ClickHouse share the same 2 cores.")
    name = "streams-throughput" if WORKERS == 1 else f"streams-throughput-{WORKERS}-workers"
    write_section(name, f"Stream worker throughput ({WORKERS} worker(s)): end to end vs raw limit", body,
                  command=f"STREAMS_BENCH_SCANS={SCANS} STREAMS_BENCH_WORKERS={WORKERS} "
                          "pytest tests/benchmarks/test_streams_throughput.py -m benchmark -s")
    print(body)
