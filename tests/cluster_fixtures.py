"""Session fixtures of the cluster profile (issue 12): one real cluster on its own ports for the whole run.

ZooKeeper, 3 Kafka nodes and 4 ClickHouse 18.16 servers (cluster ``truyvet``, 2 shards x 2 replicas) are
started on the single-node test ports + ``TRUYVET_TEST_CLUSTER_PORT_OFFSET`` (default 500; e.g. Kafka
9592/9602/9612, ClickHouse 9500-9530) under ``<data dir>/test-cluster``, only when a test asks for
them, and stopped at the end of the session (``TRUYVET_TEST_CLUSTER_KEEP=1`` leaves them running for
the next run). This run's database and topic prefix are the same as the single-node session's.

``profile`` parametrizes a test over both profiles: it yields a :class:`ProfileStack` (services, db,
token factory) for ``single`` (the session's stack) or ``cluster`` (services started on the cluster).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.services import RunningServices, running_services
from truyvet.auth import Role, create_token
from truyvet.schema.db import DriverDatabase
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.clickhouse import drop_databases, ensure_database
from truyvet.stack.cluster import ClusterNodes, Layout
from truyvet.stack.kafka import ensure_topics
from truyvet.stack.processes import ProcessDir, free_port
from truyvet.units import load_units


@dataclass
class TestCluster:
    nodes: ClusterNodes
    settings: CommonSettings  # the clients' view: profile cluster, every broker, alternate servers
    started_in: float  # seconds `up` took (0 when it was running already)

    @property
    def layout(self) -> Layout:
        return self.nodes.layout

    def env(self) -> dict[str, str]:
        """What a service process needs to use the cluster with this run's database and topics."""
        return {**self.layout.client_env(), "TRUYVET_DATA_DIR": str(self.settings.data_dir),
                "TRUYVET_CLICKHOUSE_DATABASE": self.settings.clickhouse_database,
                "TRUYVET_TOPIC_PREFIX": self.settings.topic_prefix, "PYTHONPATH": str(PROJECT_ROOT)}


def cluster_base_settings(single: CommonSettings) -> CommonSettings:
    offset = int(os.environ.get("TRUYVET_TEST_CLUSTER_PORT_OFFSET", "500"))
    host, _, port = single.kafka_bootstrap.split(",")[0].rpartition(":")
    return single.model_copy(update={
        "data_dir": single.data_dir / "test-cluster",
        "kafka_bootstrap": f"{host}:{int(port) + offset}",
        "kafka_controller_port": single.kafka_controller_port + offset,
        "clickhouse_port": single.clickhouse_port + offset,
        "clickhouse_http_port": single.clickhouse_http_port + offset,
        "zookeeper_port": single.zookeeper_port + offset,
    })


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster]:
    """The cluster profile's engines running, this run's topics and cluster schema created."""
    base = cluster_base_settings(CommonSettings())
    jars = base.data_dir.parent / "kafka" / "libs"
    if jars.exists() and not (base.data_dir / "kafka" / "libs").exists():  # reuse the jars already fetched
        (base.data_dir / "kafka").mkdir(parents=True, exist_ok=True)
        (base.data_dir / "kafka" / "libs").symlink_to(jars)
    nodes = ClusterNodes(base)
    started = time.monotonic()
    was_running = nodes.running()
    nodes.up()
    up_seconds = 0.0 if was_running else time.monotonic() - started
    print(f"\ncluster profile up in {up_seconds:.1f}s" if up_seconds else "\ncluster profile already running")
    settings = nodes.layout.client_settings()
    ensure_topics(settings)
    ensure_database(settings).close()
    yield TestCluster(nodes, settings, up_seconds)
    rss = nodes.resident_bytes()
    print(f"\ncluster engines' resident memory at the end: {sum(rss.values()) / 2**20:.0f} MiB "
          f"({', '.join(f'{k} {v / 2**20:.0f}' for k, v in sorted(rss.items()))})")
    try:
        drop_databases(settings)
    finally:
        if os.environ.get("TRUYVET_TEST_CLUSTER_KEEP") != "1":
            nodes.down()


@pytest.fixture(scope="session")
def cluster_db(cluster: TestCluster) -> Iterator[DriverDatabase]:
    from truyvet.schema import connect

    client = connect(cluster.settings)
    load_units(client, PROJECT_ROOT / "deploy" / "data" / "bac_kan_units.csv")
    yield client
    client.close()


@pytest.fixture(scope="session")
def cluster_services(cluster: TestCluster, cluster_db: DriverDatabase) -> Iterator[RunningServices]:
    """Ingest API, trace API, one worker and the dispatcher on the cluster, as real processes."""
    ports = {"TRUYVET_INGEST_PORT": free_port(), "TRUYVET_TRACE_PORT": free_port(),
             "TRUYVET_WORKER_METRICS_PORT": free_port(), "ALERTS_DISPATCHER_PORT": free_port()}
    env = {**cluster.env(), **{k: str(v) for k, v in ports.items()}, "ALERTS_BACKOFF_CAP_SECONDS": "4",
           "STREAMS_APP_ID": os.environ.get("STREAMS_APP_ID", "truyvet-test") + "-cluster"}
    settings = cluster.settings.model_copy(update={
        "ingest_port": ports["TRUYVET_INGEST_PORT"], "trace_port": ports["TRUYVET_TRACE_PORT"],
        "worker_metrics_port": ports["TRUYVET_WORKER_METRICS_PORT"],
        "dispatcher_port": ports["ALERTS_DISPATCHER_PORT"]})
    procs = ProcessDir(cluster.settings.data_dir / "test-runs" / str(os.getpid()))
    with running_services(settings, env, procs, label="cluster ", timeout=120) as running:
        yield running


@dataclass
class ProfileStack:
    name: str  # "single" | "cluster"
    services: RunningServices  # the session's or the cluster's
    db: DriverDatabase
    token: Callable[..., dict[str, str]]


@pytest.fixture(params=["single", "cluster"])
def profile(request: pytest.FixtureRequest) -> ProfileStack:
    """Parametrizes a test over the single-node stack and the cluster profile (same services, same API)."""
    if request.param == "single":
        return ProfileStack("single", request.getfixturevalue("services"), request.getfixturevalue("db"),
                            request.getfixturevalue("token"))
    db = request.getfixturevalue("cluster_db")
    request.getfixturevalue("cluster_services")

    def make(role: Role, ward: str = "") -> dict[str, str]:
        return {"Authorization": f"Bearer {create_token(db, role=role, ward_code=ward, name=f'test-{role.value}')}"}

    return ProfileStack("cluster", request.getfixturevalue("cluster_services"), db, make)
