"""End-to-end intake of a stack: scans POSTed over HTTP (batches of 500) -> ingest processes -> Kafka ->
stream workers -> ClickHouse, timed from the first request to the moment the workers' committed offsets
reach the end of ``scans`` (a commit follows ClickHouse's acceptance of every visit before it), then
the visits compared with the reference model. CPU time of every component over the run gives the
per-scan costs the capacity plan (docs/capacity.md) is built from.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from rich.progress import Progress

from tests.benchmarks.scale_stack import BenchStack, cpu_by_kind, kafka_log_bytes
from tests.integration.streams.harness import EPOCH, VENUE_COLUMNS, as_map, stay_function
from tests.unit.streams.reference import RefVisit, reference_visits
from tests.unit.streams.scenarios import generate, make_venues
from truyvet.auth import Role, create_token
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs
from truyvet.schema import connect
from truyvet.stack.processes import wait_until

BATCH = 500
CONCURRENCY = 8
IDLE_SECONDS = 10.0  # CPU of the idle stack measured this long before the run (fixed cost, not per scan)


@dataclass
class E2E:
    scans: int
    visits: int
    seconds: float
    post_seconds: float
    cpu: dict[str, float]  # CPU seconds per component kind over the run
    errors: int
    kafka_bytes: dict[str, int]  # bytes added to each topic's log segments (all replicas) over the run
    idle: dict[str, float]  # CPU seconds per second per component kind while the stack had nothing to do
    per_ingest: dict[str, float]  # scans each ingest process accepted (its own /metrics)

    @property
    def rate(self) -> float:
        return self.scans / self.seconds

    def cpu_us_per_scan(self) -> dict[str, float]:
        return {kind: 1e6 * seconds / self.scans for kind, seconds in sorted(self.cpu.items())}

    def marginal_us_per_scan(self) -> dict[str, float]:
        """CPU per scan less what the component spends idle over the same time (heartbeats, merges of
        nothing, ZooKeeper sessions): the cost that grows with the load."""
        return {kind: max(0.0, 1e6 * (seconds - self.idle.get(kind, 0.0) * self.seconds) / self.scans)
                for kind, seconds in sorted(self.cpu.items())}


def _lag(stack: BenchStack, admin: KafkaAdminClient, consumer: KafkaConsumer) -> int:
    topic = stack.settings.topic(Topics.SCANS)
    group = f"{stack.app_id}-scans"  # streams/config.py: StreamsSettings.group("scans")
    committed = admin.list_group_offsets({group: None}).get(group, {})
    tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
    ends = consumer.end_offsets(tps)
    return sum(end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
               for tp, end in ends.items())


async def _post(url: str, headers: dict[str, str], bodies: list[bytes], progress: Progress) -> int:
    task = progress.add_task("POST /v1/scans/batch", total=len(bodies))
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    errors = 0
    send_headers = {**headers, "content-type": "application/json"}

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            for _attempt in range(20):  # a 503 (Kafka busy) is retried as a device would, after Retry-After
                async with session.post(url, data=body, headers=send_headers) as r:
                    answer = await r.read()
                if r.status == 202:
                    errors += len(orjson.loads(answer)["rejected"])
                    break
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
            else:
                errors += BATCH
            progress.advance(task)

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        await asyncio.gather(*(one(session) for _ in range(CONCURRENCY)))
    return errors


def _bodies(scans: list, at_venue: dict[str, str]) -> list[bytes]:  # noqa: ANN001
    bodies = []
    for i in range(0, len(scans), BATCH):
        items = [{"scan_id": s.scan_id, "scanned_at": datetime.fromtimestamp(s.t, UTC).isoformat(),
                  "direction": s.direction, "venue_id": at_venue[s.venue_id], "person_id": s.person_id}
                 for s in scans[i:i + BATCH]]
        bodies.append(orjson.dumps(items))
    return bodies


def visits_seen(stack: BenchStack, prefix: str) -> dict[str, RefVisit]:
    db = connect(stack.settings)
    try:
        rows = db.execute("SELECT visit_id, any(person_id), any(venue_id), any(t_in), argMax(t_out, version), "
                          "argMax(deleted, version) FROM visits WHERE person_id LIKE %(p)s GROUP BY visit_id",
                          {"p": f"{prefix}%"})
    finally:
        db.close()
    return as_map(RefVisit(v, p, ven, int(a.timestamp()), int(b.timestamp())) for v, p, ven, a, b, d in rows if not d)


def run_e2e(stack: BenchStack, n_scans: int, progress: Progress, *, seed: int | None = None) -> E2E:
    rng = random.Random(secrets.randbits(32) if seed is None else seed)  # new scan ids each run
    prefix = f"b{stack.profile[0]}{secrets.token_hex(3)}-"  # new ids each run: a reused stack has the last run's
    venues = make_venues(rng, 1000, prefix=f"{prefix}v")
    start = int((datetime.now(UTC) - timedelta(days=3)).timestamp())
    scans = generate(rng, persons=max(1, n_scans // 13), venues=venues, start=start, visits_per_person=8,
                     prefix=f"{prefix}p")
    scans = [s for s in scans if s.t <= time.time() - 60]  # nothing in the future
    expected = reference_visits(scans, stay_for=stay_function(venues))
    db = connect(stack.settings)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        db.insert("venues", VENUE_COLUMNS, [(v.venue_id, v.venue_id, v.category, "01840", "", "",
                                             v.default_stay_minutes, EPOCH, EPOCH, now, now) for v in venues])
        token = create_token(db, role=Role.device, name=f"bench-{prefix}")
        wait_until(lambda: db.execute("SELECT count() FROM venues WHERE venue_id LIKE %(p)s",
                                      {"p": f"{prefix}%"})[0][0] == len(venues), timeout=60, what="venues visible")
    finally:
        db.close()
    headers = {"Authorization": f"Bearer {token}"}
    bodies = _bodies(scans, {v.venue_id: v.venue_id for v in venues})
    url = f"{stack.settings.ingest_url}/v1/scans/batch"
    wait_until(lambda: _authorized(url, headers), timeout=60, what="device token accepted")
    admin = KafkaAdminClient(**client_kwargs(stack.settings), request_timeout_ms=15000)
    consumer = KafkaConsumer(**client_kwargs(stack.settings))
    try:
        base_lag = _lag(stack, admin, consumer)
        assert base_lag == 0, f"the workers are behind before the run ({base_lag})"
        idle_from = cpu_by_kind(stack)
        time.sleep(IDLE_SECONDS)
        idle = {k: (v - idle_from.get(k, 0.0)) / IDLE_SECONDS for k, v in cpu_by_kind(stack).items()}
        cpu_before, kafka_before = cpu_by_kind(stack), kafka_log_bytes(stack)
        started = time.perf_counter()
        errors = asyncio.run(_post(url, headers, bodies, progress))
        posted = time.perf_counter() - started
        task = progress.add_task("workers catching up (scans not yet committed)", total=None)

        def caught_up() -> bool:
            lag = _lag(stack, admin, consumer)
            progress.update(task, description=f"workers catching up ({lag:,} scans not yet committed)")
            return lag == 0

        wait_until(caught_up, timeout=3600, what="workers caught up", interval=0.25)
        seconds = time.perf_counter() - started
        progress.remove_task(task)
        cpu_after, kafka_after = cpu_by_kind(stack), kafka_log_bytes(stack)
    finally:
        admin.close()
        consumer.close()
    got = visits_seen(stack, prefix)
    assert got == expected, f"{len(got)} visits in ClickHouse, {len(expected)} expected"
    cpu = {k: cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0) for k in cpu_after}
    grown = {t: kafka_after[t] - kafka_before.get(t, 0) for t in kafka_after if kafka_after[t] > kafka_before.get(t, 0)}
    return E2E(len(scans), len(expected), seconds, posted, cpu, errors, grown, idle, accepted_per_process(stack))


def accepted_per_process(stack: BenchStack) -> dict[str, float]:
    """Scans accepted by each ingest process of the pool, read from the process's own port."""
    import httpx

    from truyvet.stack.ingest_pool import own_health_url

    out = {}
    for name, pid in stack.pids("ingest").items():
        url = own_health_url(stack.settings, pid)
        if url:
            text = httpx.get(url.replace("/healthz", "/metrics"), timeout=10).text
            found = re.search(r'^truyvet_ingest_scans_total\{outcome="accepted"\} (\S+)$', text, re.M)
            out[name] = float(found.group(1)) if found else 0.0
    return out


def _authorized(url: str, headers: dict[str, str]) -> bool:
    import httpx

    return httpx.post(url, headers=headers, json=[], timeout=10).status_code != 401
