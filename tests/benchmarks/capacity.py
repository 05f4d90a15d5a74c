"""The national capacity plan computed from the measured per-scan costs (docs/capacity-measured.json,
written by tests/benchmarks/test_scale_bench.py): the generated part of docs/capacity.md and its chart
docs/capacity.svg. ``python -m tests.benchmarks.capacity`` recomputes both from the JSON.

Vietnam at full compliance: about 1 billion scans a day, 12,000/s on average, 60,000/s at peaks, 28 days
of visits retained. Every figure below is a measured cost times a load, with the headroom stated.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"
MEASURED = DOCS / "capacity-measured.json"
PLAN = DOCS / "capacity.md"
CHART = DOCS / "capacity.svg"

SCANS_PER_DAY = 1_000_000_000
AVERAGE, PEAK = 12_000, 60_000
RETENTION_DAYS = 28
HEADROOM = 0.6  # plan each component to run at most 60% busy at the peak (a lost machine's share moves)
KAFKA_REPLICATION = 3
CH_REPLICAS = 2
SERVER_DISK_TB = 2.0  # usable NVMe per ClickHouse server, filled to at most 70%
KAFKA_SCANS_RETENTION_DAYS = 7  # replay window kept in Kafka (ClickHouse holds the 28 days)
TRACES_PER_DAY = 50_000  # depth-2 traces a day at the height of an outbreak (cases registered, re-traces)
KINDS = ("ingest", "kafka", "worker", "clickhouse", "zookeeper", "dispatcher", "trace")


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _profile(measured: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The cluster's figures when measured (replicated costs), else the single node's."""
    profiles = measured["profiles"]
    name = "cluster" if "cluster" in profiles else next(iter(profiles))
    return name, profiles[name]


def plan(measured: dict[str, Any]) -> dict[str, Any]:
    name, fig = _profile(measured)
    us = fig.get("marginal_us_per_scan") or fig["cpu_us_per_scan"]  # the part that grows with the load
    replicated = name == "cluster"
    # A single node's Kafka and ClickHouse write one copy: scale to the planned copies.
    kafka_factor = 1 if replicated else KAFKA_REPLICATION
    ch_factor = 1 if replicated else CH_REPLICAS
    per_scan = {k: us.get(k, 0.0) * (kafka_factor if k == "kafka" else ch_factor if k == "clickhouse" else 1)
                for k in KINDS if k in us}
    cores = {k: {"average": AVERAGE * v / 1e6 / HEADROOM, "peak": PEAK * v / 1e6 / HEADROOM}
             for k, v in per_scan.items()}
    visits_per_scan = fig["visits"] / fig["scans"]
    trace = fig["trace"]["disk"]
    bytes_per_visit_copy = trace["by_person"] + trace["by_venue"]
    visits_per_day = SCANS_PER_DAY * visits_per_scan
    ch_day = visits_per_day * bytes_per_visit_copy * CH_REPLICAS
    ch_total = ch_day * RETENTION_DAYS
    kafka_scan_bytes = sum(fig["kafka_bytes_per_scan"].values()) * (1 if replicated else KAFKA_REPLICATION)
    scans_topic = fig["kafka_bytes_per_scan"].get("scans", 0.0) * (1 if replicated else KAFKA_REPLICATION)
    kafka_day = SCANS_PER_DAY * kafka_scan_bytes
    kafka_total = kafka_day * KAFKA_SCANS_RETENTION_DAYS
    worker_rate = 1e6 / per_scan["worker"] if per_scan.get("worker") else 0.0  # one process = one core
    workers_peak = math.ceil(PEAK / (worker_rate * HEADROOM)) if worker_rate else 0
    partitions = max(48, 2 ** math.ceil(math.log2(max(1, workers_peak * 2))))
    ingest_rate = 1e6 / per_scan["ingest"] if per_scan.get("ingest") else 0.0
    ch_cores_peak = cores.get("clickhouse", {}).get("peak", 0.0)
    shards_disk = math.ceil(ch_total / CH_REPLICAS / (SERVER_DISK_TB * 1e12 * 0.7))
    shards_cpu = math.ceil(ch_cores_peak / CH_REPLICAS / 8)  # 16-core servers, half for reads (traces)
    shards = max(2, shards_disk, shards_cpu)
    memory = {}
    for _name, kind, mib in fig["memory_mib"]:
        memory.setdefault(kind, []).append(mib)
    return {
        "profile": name, "per_scan_us": per_scan, "cores": cores, "visits_per_scan": visits_per_scan,
        "bytes_per_visit_copy": bytes_per_visit_copy, "clickhouse_bytes_day": ch_day,
        "clickhouse_bytes_total": ch_total,
        "kafka_bytes_per_scan": kafka_scan_bytes, "kafka_scans_topic_bytes_per_scan": scans_topic,
        "kafka_bytes_day": kafka_day, "kafka_bytes_total": kafka_total,
        "worker_rate": worker_rate, "workers_peak": workers_peak, "partitions": partitions,
        "ingest_rate": ingest_rate, "ingest_peak": math.ceil(PEAK / (ingest_rate * HEADROOM)) if ingest_rate else 0,
        "shards": shards, "shards_disk": shards_disk, "shards_cpu": shards_cpu,
        "memory_mib_by_kind": {k: max(v) for k, v in memory.items()},
        "idle_cores": sum(fig.get("idle_cores", {}).values()),
        "trace_cpu_ms": sum(fig["trace"].get("cpu_ms", {}).get("2", {}).values()),
    }


def _tb(value: float) -> str:
    return f"{value / 1e12:,.1f} TB" if value >= 1e12 else f"{value / 1e9:,.0f} GB"


def plan_markdown(measured: dict[str, Any]) -> str:
    p = plan(measured)
    rows = "\n".join(f"| {k} | {p['per_scan_us'][k]:,.0f} | {1e6 / p['per_scan_us'][k]:,.0f} | "
                     f"{p['cores'][k]['average']:,.1f} | {p['cores'][k]['peak']:,.1f} |"
                     for k in KINDS if k in p["per_scan_us"] and p["per_scan_us"][k] > 0)
    total_avg = sum(c["average"] for c in p["cores"].values())
    total_peak = sum(c["peak"] for c in p["cores"].values())
    mem = ", ".join(f"{k} {v:,.0f} MiB" for k, v in sorted(p["memory_mib_by_kind"].items()))
    kafka_days = _tb(p["kafka_bytes_day"] * RETENTION_DAYS)
    copies = ("Replicated costs as measured (Kafka replication 3, ClickHouse 2 replicas)." if p["profile"] == "cluster"
              else "Single-node costs, multiplied by the planned copies (Kafka x3, ClickHouse x2).")
    fig = measured["profiles"][p["profile"]]
    total_us = sum(p["per_scan_us"].values())
    lines = [
        f"Measured on the `{p['profile']}` profile ({measured['date']}, commit {measured['commit']}; "
        f"{measured['machine']}). {copies}",
        "",
        f"On that machine the profile carried {fig['scans_per_s']:,.0f} scans/s end to end (load average "
        f"{fig['load_before']:.0f} before the run, including what the run before it left); at its "
        f"{total_us:,.0f} µs of "
        f"CPU per scan, all of the machine's 2 cores would carry about {2e6 / total_us:,.0f} scans/s with "
        "everything co-located. The issue's aim of 15,000/s on 2 shared cores is out of reach of this design "
        "on the cluster profile; a national deployment runs on many cores, where these per-scan costs add up "
        "as below.",
        "",
        "| component | CPU µs per scan | scans/s per busy core | cores at 12,000/s | cores at 60,000/s |",
        "|---|---:|---:|---:|---:|",
        rows,
        f"| **total** | | | **{total_avg:,.0f}** | **{total_peak:,.0f}** |",
        "",
        f"Cores are planned at {HEADROOM:.0%} busy at the peak: a lost machine's share and bursts above the peak fit.",
        "",
        "| sizing | value | from |",
        "|---|---|---|",
        f"| visits per scan | {p['visits_per_scan']:.2f} | the end-to-end run |",
        f"| ClickHouse compressed bytes per visit, one copy of both sort orders | {p['bytes_per_visit_copy']:.0f} B "
        "| system.parts at 10M visits |",
        f"| ClickHouse disk per day ({CH_REPLICAS} replicas) | {_tb(p['clickhouse_bytes_day'])} "
        "| 1e9 scans x visits/scan x bytes x replicas |",
        f"| ClickHouse disk for {RETENTION_DAYS} days | {_tb(p['clickhouse_bytes_total'])} | |",
        f"| Kafka bytes per scan, all topics, {KAFKA_REPLICATION} replicas (of which `scans`) "
        f"| {p['kafka_bytes_per_scan']:,.0f} B ({p['kafka_scans_topic_bytes_per_scan']:,.0f} B) "
        "| log segments grown in the run |",
        f"| Kafka disk per day | {_tb(p['kafka_bytes_day'])} | |",
        f"| Kafka disk for a {KAFKA_SCANS_RETENTION_DAYS}-day replay window | {_tb(p['kafka_bytes_total'])} "
        f"| {kafka_days} if kept {RETENTION_DAYS} days |",
        f"| stream workers at the peak | {p['workers_peak']} processes "
        f"({p['worker_rate']:,.0f} scans/s each at 100% of a core) | |",
        f"| `scans` partitions | {p['partitions']} | 2 per worker at the peak, rounded up to a power of two, "
        "at least 48 |",
        f"| ingest processes at the peak | {p['ingest_peak']} ({p['ingest_rate']:,.0f} scans/s each at 100% of "
        "a core) | |",
        f"| ClickHouse shards x replicas | {p['shards']} x {CH_REPLICAS} | disk: {p['shards_disk']}, write CPU: "
        f"{p['shards_cpu']} (16-core servers, half kept for traces) |",
        f"| resident memory per process (largest measured) | {mem} | RSS in the run |",
        f"| CPU of the stack idle (all nodes of the profile) | {p['idle_cores']:.2f} cores | fixed, not per scan |",
        f"| traces: CPU per depth-2 trace (trace API + ClickHouse) | {p['trace_cpu_ms']:,.0f} ms | "
        f"{TRACES_PER_DAY:,} a day, 5 x at the busiest hour: "
        f"{TRACES_PER_DAY * p['trace_cpu_ms'] / 1000 / 86400 * 5 / HEADROOM:.1f} cores |",
    ]
    return "\n".join(lines) + "\n"


def chart_svg(measured: dict[str, Any]) -> str:
    """Cores per component at the average and at the peak, as grouped horizontal bars."""
    p = plan(measured)
    kinds = [k for k in KINDS if p["cores"].get(k, {}).get("peak", 0) > 0.05]
    top = max(p["cores"][k]["peak"] for k in kinds)
    width, left, bar, gap = 720, 110, 14, 14
    scale = (width - left - 90) / top
    height = 60 + len(kinds) * (2 * bar + gap) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15" font-weight="bold">Cores needed, Vietnam '
           f'(1 billion scans/day), at {HEADROOM:.0%} busy</text>',
           f'<rect x="{left}" y="34" width="12" height="12" fill="#7fa7d9"/><text x="{left + 18}" y="45">'
           f'average 12,000 scans/s</text>',
           f'<rect x="{left + 190}" y="34" width="12" height="12" fill="#d9534f"/><text x="{left + 208}" y="45">'
           'peak 60,000 scans/s</text>']
    y = 60
    for k in kinds:
        avg, peak = p["cores"][k]["average"], p["cores"][k]["peak"]
        out.append(f'<text x="{left - 8}" y="{y + bar + 4}" text-anchor="end">{k}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{avg * scale:.1f}" height="{bar}" fill="#7fa7d9"/>')
        out.append(f'<text x="{left + avg * scale + 4:.1f}" y="{y + bar - 3}">{avg:,.1f}</text>')
        out.append(f'<rect x="{left}" y="{y + bar}" width="{peak * scale:.1f}" height="{bar}" fill="#d9534f"/>')
        out.append(f'<text x="{left + peak * scale + 4:.1f}" y="{y + 2 * bar - 3}">{peak:,.1f}</text>')
        y += 2 * bar + gap
    out.append(f'<text x="{left}" y="{height - 10}" fill="#555">from the measured CPU per scan '
               f'({p["profile"]} profile, {measured["date"]}); docs/capacity.md</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def benchmark_section(measured: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: both profiles side by side."""
    profiles = measured["profiles"]
    names = list(profiles)
    head = "| measure | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names)

    def row(label: str, fn: Any) -> str:
        return f"| {label} | " + " | ".join(fn(profiles[n]) for n in names) + " |"

    kinds = sorted({k for f in profiles.values() for k in f["cpu_us_per_scan"]})
    lines = [
        f"One run, each profile a stack of its own: `truyvet up [--cluster] --ingest-workers "
        f"{measured['ingest_workers']} --workers {measured['workers']}`; the load generator, every broker, "
        "every ClickHouse server, ZooKeeper and the services share the same 2 cores (with whatever else runs on "
        "the machine: the load averages before and after each profile are in the last row).", "", head,
        row("components", lambda f: ", ".join(f["components"])),
        row("scans (visits) end to end", lambda f: f"{f['scans']:,} ({f['visits']:,})"),
        row("**end to end scans/s** (HTTP 202 → visits in ClickHouse, compared with the reference)",
            lambda f: f"**{f['scans_per_s']:,.0f}** ({f['seconds']:.1f} s; POSTs done in {f['post_seconds']:.1f} s)"),
        *(row(f"CPU µs per scan: {k} (less idle)", lambda f, k=k: _us(f, k)) for k in kinds),
        row("CPU µs per scan: all components (less idle)", lambda f: _us(f, None)),
        row("what this machine's 2 cores could carry at that CPU cost (2,000,000 µs/s / all components, less idle)",
            lambda f: f"{2e6 / sum(f.get('marginal_us_per_scan', f['cpu_us_per_scan']).values()):,.0f} scans/s"),
        row("CPU of the idle stack (cores busy with nothing to do)",
            lambda f: f"{sum(f.get('idle_cores', {}).values()):.2f}"),
        row("Kafka bytes per scan (all topics, all replicas)",
            lambda f: f"{sum(f['kafka_bytes_per_scan'].values()):,.0f}"),
        row("scans accepted by each ingest process (one port, SO_REUSEPORT)",
            lambda f: " / ".join(f"{v:,.0f}" for v in f.get("accepted_per_ingest_process", {}).values())),
        row("resident memory, all components (MiB)", lambda f: f"**{sum(m[2] for m in f['memory_mib']):,.0f}**"),
        row("visits loaded for traces", lambda f: f"{f['trace']['visits']:,}" + (
            f" ({f['trace']['load_seconds']:.0f} s)" if f["trace"]["load_seconds"] else " (reused)")),
        *(row(f"**trace depth {d} p95 ms** (HTTP; p50)", lambda f, d=d: _trace_cell(f["trace"], d)) for d in (1, 2)),
        *(row(f"CPU ms per depth-{d} trace: trace API + ClickHouse (all servers)",
              lambda f, d=d: _trace_cpu(f["trace"], d)) for d in ("1", "2")),
        row("contacts per case (depth 1 / 2)",
            lambda f: f"{f['trace']['contacts1']:.0f} / {f['trace']['contacts2']:.0f}"),
        row("compressed bytes per visit, one copy (by person + by venue)",
            lambda f: f"{f['trace']['disk']['by_person']:.0f} + {f['trace']['disk']['by_venue']:.0f}"),
        row("load average (1 min) before / after", lambda f: f"{f['load_before']:.1f} / {f['load_after']:.1f}"),
        "",
        "Resident memory per component (MiB):", "",
    ]
    for n in names:
        parts = ", ".join(f"{c} {m:,.0f}" for c, _, m in profiles[n]["memory_mib"])
        lines.append(f"- {n}: {parts}")
    aims = []
    if "cluster" in profiles:
        f = profiles["cluster"]
        aims = [f"end to end {f['scans_per_s']:,.0f} scans/s with replication 3 (aim ≥ 15,000: "
                f"{'met' if f['scans_per_s'] >= 15000 else 'not met'})",
                f"trace depth 1 p95 {f['trace']['p95_depth1_ms']:.0f} ms (aim ≤ 100: "
                f"{'met' if f['trace']['p95_depth1_ms'] <= 100 else 'not met'})",
                f"depth 2 p95 {f['trace']['p95_depth2_ms']:.0f} ms (aim ≤ 1000: "
                f"{'met' if f['trace']['p95_depth2_ms'] <= 1000 else 'not met'})"]
        lines += ["", "Aims of issue 12 on the cluster: " + "; ".join(aims) + "."]
    lines += ["", "CPU µs per scan is each component's CPU time over the end-to-end run divided by the scans; in "
              "brackets the same less what the component burns idle over that time (measured for "
              "10 s before the run with nothing to do): the cost that grows with the load, which the capacity "
              "plan (docs/capacity.md) multiplies by the national load."]
    return "\n".join(lines)


def _us(fig: dict[str, Any], kind: str | None) -> str:
    total, marginal = fig["cpu_us_per_scan"], fig.get("marginal_us_per_scan", fig["cpu_us_per_scan"])
    if kind is None:
        return f"{sum(total.values()):,.0f} ({sum(marginal.values()):,.0f})"
    return f"{total.get(kind, 0):,.0f} ({marginal.get(kind, 0):,.0f})"


def _trace_cpu(trace: dict[str, Any], depth: str) -> str:
    cpu = trace.get("cpu_ms", {}).get(depth, {})
    return f"{cpu.get('trace', 0):.0f} + {cpu.get('clickhouse', 0):.0f}" if cpu else "-"


def _trace_cell(trace: dict[str, Any], depth: int) -> str:
    n = trace["n1"] if depth == 1 else trace["n2"]
    return f"**{trace[f'p95_depth{depth}_ms']:.0f}** ({trace[f'p50_depth{depth}_ms']:.0f}; n={n})"


def write_plan(measured: dict[str, Any]) -> None:
    block = f"<!-- capacity:plan -->\n{plan_markdown(measured)}<!-- /capacity:plan -->"
    text = PLAN.read_text(encoding="utf-8") if PLAN.exists() else "<!-- capacity:plan -->\n<!-- /capacity:plan -->\n"
    text = re.sub(r"<!-- capacity:plan -->.*?<!-- /capacity:plan -->", lambda _: block, text, flags=re.S)
    PLAN.write_text(text, encoding="utf-8")
    CHART.write_text(chart_svg(measured), encoding="utf-8")


if __name__ == "__main__":
    write_plan(json.loads(MEASURED.read_text()))
    print(plan_markdown(json.loads(MEASURED.read_text())))  # noqa: T201
