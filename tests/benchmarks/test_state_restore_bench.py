"""Benchmark: how long a worker takes to restore its person state, at the demo's size and at 1M persons.

A changelog topic of its own (8 partitions, compacted) is filled with person states of the size the worker
writes (a few scans each, as ``PersonState.to_bytes``), then one worker's store restores all 8 partitions
(what a single worker does at start, or after a rebalance that gives it everything), with its peak RSS.
Also the exposure windows and alert memory at a city's scale (they are pruned after the follow-up).
Writes the ``state-restore`` section of BENCHMARKS.md.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_state_restore_bench.py -m benchmark -s``
(``BENCH_RESTORE_PERSONS=200000,1000000`` to choose the sizes).
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from rich.progress import Progress

from streams.processor import PersonState
from streams.store import ChangelogStore
from streams.visits_worker import PERSON_STATE
from tests.benchmarks.report import write_section
from truyvet.kafka_clients import client_kwargs, security_options
from truyvet.partitioning import partition_for
from truyvet.scan import Scan
from truyvet.settings import CommonSettings

pytestmark = pytest.mark.benchmark

SIZES = [int(n) for n in os.environ.get("BENCH_RESTORE_PERSONS", "20000,1000000").split(",")]
PARTITIONS = 8
SCANS_PER_PERSON = 4  # two visits in the 72 h horizon: an in and an out each


def _state(i: int, now: int) -> bytes:
    state = PersonState()
    for k in range(SCANS_PER_PERSON):
        scan = Scan(now - 3600 * (k + 1), "in" if k % 2 else "out", f"v{i % 5000:05d}", str(uuid.UUID(int=i * 8 + k)))
        state.scans[scan.scan_id] = scan
        state.offsets[scan.scan_id] = i * SCANS_PER_PERSON + k
    return state.to_bytes()


def _fill(settings: CommonSettings, topic: str, persons: int) -> int:
    admin = KafkaAdminClient(**client_kwargs(settings))
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        admin.close()
    producer = KafkaProducer(**client_kwargs(settings), acks=1, linger_ms=20,
                             batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    now = int(time.time())
    size = 0
    with Progress() as progress:
        task = progress.add_task(f"writing {persons:,} person states", total=persons)
        for i in range(persons):
            key = f"p{i:09d}"
            value = _state(i, now)
            size += len(value)
            producer.send(topic, key=key.encode(), value=value, partition=partition_for(key, PARTITIONS))
            if i % 10_000 == 0:
                progress.update(task, completed=i)
        producer.flush(timeout=600)
        progress.update(task, completed=persons)
    producer.close()
    return size // persons


async def _restore(settings: CommonSettings, topic: str) -> tuple[float, int]:
    store = ChangelogStore("person-scans", topic, codec=PERSON_STATE, bootstrap=settings.kafka_bootstrap,
                           client_options=security_options(settings))
    started = time.perf_counter()
    await store.restore(set(range(PARTITIONS)))
    return time.perf_counter() - started, len(store)


def test_person_state_restore_time(infra: CommonSettings) -> None:
    rows = []
    for persons in SIZES:
        topic = f"bench-restore-{secrets.token_hex(3)}"
        bytes_each = _fill(infra, topic, persons)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seconds, keys = asyncio.run(_restore(infra, topic))
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert keys == persons
        rows.append((persons, bytes_each, seconds, persons / seconds, (rss_after - rss_before) / 1024))
        print(f"\n{persons:,} persons ({bytes_each} B each): restored in {seconds:.1f} s "
              f"({persons / seconds:,.0f}/s), peak RSS +{(rss_after - rss_before) / 1024:.0f} MiB")
        admin = KafkaAdminClient(**client_kwargs(infra))
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
    table = "\n".join(f"| {p:,} | {b} | {s:.1f} | {r:,.0f} | {m:.0f} |" for p, b, s, r, m in rows)
    write_section(
        "state-restore",
        "Worker state restore: person states read back from the changelog",
        "One worker restoring all 8 partitions of `person-scans` (start-up, or a rebalance that gives it\n"
        f"everything); each person {SCANS_PER_PERSON} scans in state, values as the worker writes them. The\n"
        "restore runs before any record of those partitions is processed; `/healthz` says `restoring` meanwhile.\n\n"
        "| persons | bytes per state | seconds | states/s | peak RSS growth (MiB) |\n|---|---|---|---|---|\n"
        + table + "\n\nThe exposure windows and the alert memory are pruned at the end of each case's follow-up\n"
        "(`STREAMS_MATCHING_SWEEP_SECONDS`), the person states at the 72 h horizon, so a restore reads at most\n"
        "the people scanned in the last 72 h plus the live cases' windows.",
        command="python -m pytest tests/benchmarks/test_state_restore_bench.py -m benchmark -s",
    )
