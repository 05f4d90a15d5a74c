"""Single node and cluster in the same run: end-to-end scans/s, trace p95 at 10M visits, resident memory.

``pytest tests/benchmarks/test_scale_bench.py -m benchmark -s`` (``make bench`` runs it too). For each
profile in ``SCALE_BENCH_PROFILES`` (default ``single,cluster``) it starts a stack of its own
(`truyvet up [--cluster] --ingest-workers 2 --workers 2`, data under ``.local/bench-scale-<profile>``,
ports from ``SCALE_BENCH_PORT_BASE``), then:

1. end to end: ``SCALE_BENCH_SCANS`` scans (default 300,000) POSTed in batches of 500 over 8
   connections to the ingest port, until the workers have committed them all (ClickHouse has every
   visit), compared with the reference model; CPU time of each component over that run;
2. resident memory of every component right after (sum of RSS of each process and its children);
3. ``SCALE_BENCH_VISITS`` visits (default 10M) generated through the ``visits`` table (Distributed on the
   cluster), then trace latency over HTTP, depth 1 (``SCALE_BENCH_DEPTH1``, 100 cases) and depth 2
   (``SCALE_BENCH_DEPTH2``, 30 cases); compressed bytes per visit from system.parts.

Figures go to BENCHMARKS.md (section ``scale``) and ``docs/capacity-measured.json``, from which
``python -m tests.benchmarks.capacity`` computes the national plan in docs/capacity.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime

import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tests.benchmarks import capacity
from tests.benchmarks.report import git_rev, machine, write_section
from tests.benchmarks.scale_e2e import run_e2e
from tests.benchmarks.scale_stack import bench_stack, memory_by_component
from tests.benchmarks.scale_trace import run_trace
from tests.benchmarks.test_trace_benchmark import City

pytestmark = pytest.mark.benchmark

PROFILES = [p.strip() for p in os.environ.get("SCALE_BENCH_PROFILES", "single,cluster").split(",") if p.strip()]
SCANS = int(os.environ.get("SCALE_BENCH_SCANS", "300000"))
VISITS = int(float(os.environ.get("SCALE_BENCH_VISITS", "10000000")))
N1 = int(os.environ.get("SCALE_BENCH_DEPTH1", "100"))
N2 = int(os.environ.get("SCALE_BENCH_DEPTH2", "30"))
INGEST_WORKERS, WORKERS = 2, 2


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


@pytest.mark.timeout(4 * 3600)
def test_scale_single_and_cluster() -> None:
    console = Console(stderr=True)
    figures: dict[str, dict[str, object]] = {}
    for profile in PROFILES:
        console.rule(f"profile: {profile}")
        with bench_stack(profile, ingest_workers=INGEST_WORKERS, workers=WORKERS) as stack, _progress(console) as pr:
            load_before = os.getloadavg()[0]
            e2e = run_e2e(stack, SCANS, pr)
            console.print(f"{profile}: {e2e.rate:,.0f} scans/s end to end ({e2e.scans:,} scans in {e2e.seconds:.1f} s)")
            stack.status()
            memory = memory_by_component(stack)
            console.print(f"{profile}: resident memory {sum(m for _, _, m in memory):,.0f} MiB")
            trace = run_trace(stack, City(VISITS), pr, N1, N2)
            console.print(f"{profile}: trace p95 depth 1 {trace.p95(1):.0f} ms, depth 2 {trace.p95(2):.0f} ms")
            figures[profile] = {
                "scans": e2e.scans, "visits": e2e.visits, "seconds": e2e.seconds, "post_seconds": e2e.post_seconds,
                "scans_per_s": e2e.rate, "errors": e2e.errors, "cpu_us_per_scan": e2e.cpu_us_per_scan(),
                "marginal_us_per_scan": e2e.marginal_us_per_scan(), "idle_cores": e2e.idle,
                "accepted_per_ingest_process": e2e.per_ingest,
                "kafka_bytes_per_scan": {t: b / e2e.scans for t, b in sorted(e2e.kafka_bytes.items())},
                "memory_mib": [list(m) for m in memory], "load_before": load_before, "load_after": os.getloadavg()[0],
                "trace": {k: v for k, v in asdict(trace).items() if k not in ("depth1_ms", "depth2_ms")}
                | {"p95_depth1_ms": trace.p95(1), "p95_depth2_ms": trace.p95(2),
                   "p50_depth1_ms": capacity.pct(trace.depth1_ms, 50),
                   "p50_depth2_ms": capacity.pct(trace.depth2_ms, 50),
                   "n1": len(trace.depth1_ms), "n2": len(trace.depth2_ms)},
                "components": sorted({str(c["kind"]) for c in stack.components}),
            }
            assert e2e.errors == 0
            assert len(e2e.per_ingest) == INGEST_WORKERS and all(n > 0 for n in e2e.per_ingest.values()), e2e.per_ingest
    measured = {"machine": machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": git_rev(),
                "ingest_workers": INGEST_WORKERS, "workers": WORKERS, "profiles": figures}
    capacity.MEASURED.write_text(json.dumps(measured, indent=1, ensure_ascii=False) + "\n")
    body = capacity.benchmark_section(measured)
    write_section("scale", "Single node vs cluster: intake, trace at 10M visits, memory", body,
                  command=f"SCALE_BENCH_PROFILES={','.join(PROFILES)} SCALE_BENCH_SCANS={SCANS} "
                          f"SCALE_BENCH_VISITS={VISITS} pytest tests/benchmarks/test_scale_bench.py -m benchmark -s")
    capacity.write_plan(measured)
    print(body)
