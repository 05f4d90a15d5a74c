"""A whole stack of the benchmark's own (`truyvet up [--cluster]`), and what its processes cost: CPU time
and resident memory per component, read from /proc for the pids that `truyvet status --json` names.

Used by tests/benchmarks/test_scale_bench.py. The stack lives under ``.local/bench-scale-<profile>``
with ports of the benchmark's own (``SCALE_BENCH_PORT_BASE``, default 26100; the cluster's other nodes
take the ports its profile derives from these), and is stopped with `truyvet down` at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from truyvet.settings import PROJECT_ROOT, CommonSettings

CLI = [sys.executable, "-m", "truyvet.cli"]
PORT_BASE = int(os.environ.get("SCALE_BENCH_PORT_BASE", "26100"))


@dataclass
class BenchStack:
    profile: str  # "single" | "cluster"
    env: dict[str, str]
    settings: CommonSettings
    app_id: str
    components: list[dict[str, object]] = field(default_factory=list)

    def status(self) -> list[dict[str, object]]:
        done = subprocess.run([*CLI, "status", "--json"], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        self.components = json.loads(done.stdout)["components"]
        return self.components

    def pids(self, kind: str | None = None) -> dict[str, int]:
        return {str(c["name"]): int(c["pid"]) for c in self.components  # type: ignore[call-overload]
                if c["pid"] and (kind is None or c["kind"] == kind)}


def profile_env(profile: str, data: Path, app_id: str) -> dict[str, str]:
    """Ports of its own for each profile (single: base+0.., cluster: base+100..; the cluster's nodes take
    +10 per node from the first's, the services sit above them at +40..), the rate limit lifted."""
    base = PORT_BASE + (0 if profile == "single" else 100)
    jars = PROJECT_ROOT / ".local" / "kafka" / "libs"
    if jars.exists() and not (data / "kafka" / "libs").exists():  # the Kafka jars already fetched
        (data / "kafka").mkdir(parents=True, exist_ok=True)
        (data / "kafka" / "libs").symlink_to(jars)
    return {
        **os.environ,
        "TRUYVET_DATA_DIR": str(data),
        "TRUYVET_KAFKA_BOOTSTRAP": f"127.0.0.1:{base + 2}",
        "TRUYVET_KAFKA_CONTROLLER_PORT": str(base + 3),
        "TRUYVET_CLICKHOUSE_PORT": str(base),
        "TRUYVET_CLICKHOUSE_HTTP_PORT": str(base + 1),
        "TRUYVET_ZOOKEEPER_PORT": str(base + 4),
        "TRUYVET_INGEST_PORT": str(base + 40),
        "TRUYVET_TRACE_PORT": str(base + 41),
        "TRUYVET_WORKER_METRICS_PORT": str(base + 42),  # workers take +42, +43...
        "ALERTS_DISPATCHER_PORT": str(base + 49),
        "TRUYVET_TOPIC_PREFIX": "",
        "TRUYVET_CLICKHOUSE_DATABASE": "truyvet",
        "TRUYVET_ENVIRONMENT": "test",
        "TRUYVET_PSEUDONYM_KEY": "bench-scale-pseudonym-key",
        "STREAMS_APP_ID": app_id,
        "INGEST_RATE_LIMIT_SCANS_PER_SECOND": "1e9",
        "INGEST_RATE_LIMIT_BURST": "1000000000",
        "COLUMNS": "200",
    }


@contextmanager
def bench_stack(profile: str, *, ingest_workers: int, workers: int) -> Iterator[BenchStack]:
    data = PROJECT_ROOT / ".local" / f"bench-scale-{profile}"
    app_id = f"truyvet-bench-{profile}"
    env = profile_env(profile, data, app_id)
    args = ["up", "--ingest-workers", str(ingest_workers), "--workers", str(workers)]
    if profile == "cluster":
        args.insert(1, "--cluster")
    try:
        done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"truyvet {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        settings = settings_from(env)
        stack = BenchStack(profile, env, settings, app_id)
        stack.status()
        yield stack
    finally:
        subprocess.run([*CLI, "down"], env=env, capture_output=True, text=True, timeout=300, check=False)


def settings_from(env: dict[str, str]) -> CommonSettings:
    """The settings the stack's services read (same environment)."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return CommonSettings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- /proc -----------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (ClickHouse's watchdog and server, uvicorn's children...)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                continue
    return out


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of ``pid`` and its descendants, MiB."""
    total = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants so far."""
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_by_kind(stack: BenchStack) -> dict[str, float]:
    """CPU seconds so far, summed per component kind (kafka, clickhouse, zookeeper, ingest, worker...)."""
    out: dict[str, float] = {}
    for component in stack.components:
        if component["pid"]:
            kind = str(component["kind"])
            out[kind] = out.get(kind, 0.0) + cpu_seconds(int(component["pid"]))  # type: ignore[call-overload]
    return out


def memory_by_component(stack: BenchStack) -> list[tuple[str, str, float]]:
    """(name, kind, RSS MiB) of every running component."""
    return [(str(c["name"]), str(c["kind"]), rss_mib(int(c["pid"])))  # type: ignore[call-overload]
            for c in stack.components if c["pid"]]


def kafka_log_bytes(stack: BenchStack) -> dict[str, int]:
    """Bytes of Kafka log segments under the stack's data dir, all brokers (so all replicas), per topic."""
    out: dict[str, int] = {}
    for segment in Path(stack.env["TRUYVET_DATA_DIR"]).glob("**/*.log"):
        topic, _, partition = segment.parent.name.rpartition("-")
        if not partition.isdigit() or topic.startswith("__") or "kafka" not in str(segment.parent.parent):
            continue
        try:
            out[topic] = out.get(topic, 0) + segment.stat().st_size
        except FileNotFoundError:
            continue
    return out
