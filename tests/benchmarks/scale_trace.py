"""Trace latency of a stack at 10M visits, through the tables the services read (``Distributed`` on the
cluster), and what a visit costs on disk.

The city is tests/benchmarks/test_trace_benchmark.py's (14 days, persons = N / 28, regular venues, hubs),
generated inside ClickHouse (INSERT ... SELECT from system.numbers, one day per statement) into the
``visits`` table the worker writes: on the cluster that is the Distributed table, so the rows travel the
same way (sharded by person, written to both replicas, the venue-ordered copy filled by the
materialized view on each shard). ``insert_distributed_sync=1``: a statement returns when every shard
has its rows. Then OPTIMIZE FINAL per day on every server (as the trace benchmark does).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from clickhouse_driver import Client
from rich.progress import Progress

from tests.benchmarks.scale_stack import BenchStack, cpu_by_kind
from tests.benchmarks.test_trace_benchmark import DAYS, INFECTIOUS, City, api_call, measure, percentiles
from trace_api import queries
from truyvet.auth import Role, create_token
from truyvet.schema import connect

VISIT_TABLES = ("visits", "visits_by_venue")


@dataclass
class TraceFigures:
    visits: int
    load_seconds: float | None
    depth1_ms: list[float]
    depth2_ms: list[float]
    contacts1: float
    contacts2: float
    disk: dict[str, float]  # compressed bytes per visit, per copy kind
    cpu_ms: dict[str, dict[str, float]]  # depth -> component kind -> CPU ms per trace (trace API, ClickHouse)

    def p95(self, depth: int) -> float:
        return percentiles(self.depth1_ms if depth == 1 else self.depth2_ms)[1]


def servers(stack: BenchStack) -> list[tuple[str, int]]:
    """Every ClickHouse server of the stack: the cluster's replicas, else the one node."""
    db = connect(stack.settings)
    try:
        rows = db.execute("SELECT host_address, port FROM system.clusters WHERE cluster = 'truyvet'")
    finally:
        db.close()
    return sorted({(str(h), int(p)) for h, p in rows}) or [(stack.settings.clickhouse_host,
                                                            stack.settings.clickhouse_port)]


def _client(stack: BenchStack, host: str | None = None, port: int | None = None) -> Client:
    s = stack.settings
    return Client(host=host or s.clickhouse_host, port=port or s.clickhouse_port, database=s.clickhouse_database,
                  user=s.clickhouse_user, password=s.clickhouse_secret(),
                  settings={"insert_distributed_sync": 1, "max_execution_time": 0}, send_receive_timeout=3600)


def local_visit_tables(client: Client) -> list[str]:
    """The MergeTree tables holding the visits on a server (``visits``/``visits_by_venue`` single-node,
    their replicated local tables on the cluster; not Distributed tables nor views)."""
    rows = client.execute("SELECT name FROM system.tables WHERE database = currentDatabase() "
                          "AND engine LIKE '%MergeTree' AND name LIKE 'visits%' AND name NOT LIKE '.inner%'")
    return sorted(str(r[0]) for r in rows)


def load(stack: BenchStack, city: City, progress: Progress) -> float | None:
    main = _client(stack)
    try:
        if main.execute("SELECT count() FROM visits WHERE visit_id LIKE 'b%' AND person_id LIKE 'p%'")[0][0] \
                >= city.visits:
            return None
        task = progress.add_task(f"loading {city.visits:,} visits through `visits`", total=DAYS + 1)
        started = time.monotonic()
        if main.execute("SELECT count() FROM venues WHERE venue_id LIKE 'v%' AND name LIKE 'Cơ sở %'")[0][0] \
                < city.venues:
            main.execute(city.venues_sql())
        progress.advance(task)
        for day in range(DAYS):
            main.execute(city.visits_sql(day))
            progress.advance(task)
        seconds = time.monotonic() - started
    finally:
        main.disconnect()
    optimize(stack, progress)
    return seconds


def optimize(stack: BenchStack, progress: Progress) -> None:
    """OPTIMIZE FINAL each day's partition with more than one part, on every server."""
    hosts = servers(stack)
    task = progress.add_task("OPTIMIZE FINAL per day", total=len(hosts))
    for host, port in hosts:
        client = _client(stack, host, port)
        try:
            # A replicated table is merged by its shard's leading replica (18.16 forwards OPTIMIZE from the
            # others to it as the password-less `default`, which this install does not have); the merged
            # part is then fetched by the other replica, which OPTIMIZE waits for (sync 2).
            followers = {t for t, leader in client.execute(
                "SELECT table, is_leader FROM system.replicas WHERE database = currentDatabase()") if not leader}
            tables = [t for t in local_visit_tables(client) if t not in followers]
            parts = client.execute("SELECT table, partition, count() FROM system.parts WHERE active AND database "
                                   "= currentDatabase() AND table IN %(t)s GROUP BY table, partition",
                                   {"t": tuple(tables)}) if tables else []
            for table, partition, count in parts:
                if count > 1:
                    client.execute(f"OPTIMIZE TABLE {table} PARTITION {partition} FINAL",
                                   settings={"replication_alter_partitions_sync": 2})
        finally:
            client.disconnect()
        progress.advance(task)


def disk_per_visit(stack: BenchStack) -> dict[str, float]:
    """Compressed bytes per visit on disk: one copy of each sort order, and all copies on all servers."""
    total, by_person, by_venue, rows_main = 0, 0, 0, 0
    for host, port in servers(stack):
        client = _client(stack, host, port)
        try:
            tables = local_visit_tables(client)
            for table, compressed, rows in client.execute(
                    "SELECT table, sum(data_compressed_bytes), sum(rows) FROM system.parts WHERE active AND "
                    "database = currentDatabase() AND table IN %(t)s GROUP BY table", {"t": tuple(tables)}):
                total += compressed
                if "venue" in table:
                    by_venue += compressed
                else:
                    by_person += compressed
                    rows_main += rows
        finally:
            client.disconnect()
    copies = max(1, len(servers(stack)) // 2) if stack.profile == "cluster" else 1
    # rows_main counts each visit once per replica: visits = rows_main / replicas
    replicas = 2 if stack.profile == "cluster" else 1
    visits = max(1, rows_main // replicas)
    return {"by_person": by_person / replicas / visits, "by_venue": by_venue / replicas / visits,
            "all_copies": total / visits, "replicas": float(replicas), "shards": float(copies)}


def run_trace(stack: BenchStack, city: City, progress: Progress, n1: int, n2: int) -> TraceFigures:
    load_s = load(stack, city, progress)
    db = connect(stack.settings)
    try:
        persons = [f"p{(i * 7919 + 13) % city.persons}" for i in range(max(n1, n2))]
        case_ids = [f"bench_scale_{stack.profile}_{i}" for i in range(len(persons))]
        now = datetime.now(UTC).replace(microsecond=0)
        if not db.execute("SELECT count() FROM cases WHERE case_id = %(c)s", {"c": case_ids[0]})[0][0]:
            db.insert("cases", ["case_id", "person_id", "infectious_from", "infectious_to", "label", "created_by",
                                "created_at"],
                      [(c, p, queries.ts(INFECTIOUS[0]), queries.ts(INFECTIOUS[1]), "bench", "bench", now)
                       for c, p in zip(case_ids, persons, strict=True)])
        token = create_token(db, role=Role.epidemiologist, name="bench-scale")
    finally:
        db.close()
    headers = {"Authorization": f"Bearer {token}"}
    url = stack.settings.trace_url
    task = progress.add_task(f"traces on {stack.profile} (depth 1 x{n1}, depth 2 x{n2}, each twice)", total=None)
    with httpx.Client(timeout=600) as http:
        deadline = time.monotonic() + 60
        while http.get(f"{url}/v1/cases/{case_ids[0]}/contacts", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "the trace API never saw the bench cases"
            time.sleep(0.5)
        cpu: dict[str, dict[str, float]] = {}
        before = cpu_by_kind(stack)
        t1, c1 = measure(api_call(http, url, headers, case_ids, 1), n1)
        middle = cpu_by_kind(stack)
        t2, c2 = measure(api_call(http, url, headers, case_ids, 2), n2)
        after = cpu_by_kind(stack)
    progress.remove_task(task)
    # measure() calls each case twice (a warm-up pass, then the timed one): 2n traces per series
    for depth, (a, b, n) in {"1": (before, middle, n1), "2": (middle, after, n2)}.items():
        cpu[depth] = {k: 1000 * (b[k] - a.get(k, 0.0)) / (2 * n) for k in ("trace", "clickhouse") if k in b}
    return TraceFigures(city.visits, load_s, t1, t2, statistics.mean(c1), statistics.mean(c2), disk_per_visit(stack),
                        cpu)
