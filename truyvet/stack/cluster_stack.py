"""``truyvet up --cluster``: the cluster's engines (truyvet/stack/cluster.py), its topics and schema, then the
same services as the single-node stack, started with the cluster's addresses."""

from __future__ import annotations

import logging

from truyvet.schema import connect
from truyvet.settings import CommonSettings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.cluster import ClusterNodes, ddl_stalled
from truyvet.stack.kafka import ensure_topics
from truyvet.stack.services import Stack

logger = logging.getLogger(__name__)


class ClusterStack(Stack):
    profile = "cluster"

    def __init__(self, settings: CommonSettings) -> None:
        self.nodes = ClusterNodes(settings)
        super().__init__(self.nodes.layout.client_settings())

    def service_env(self) -> dict[str, str]:
        return self.nodes.layout.client_env()

    def infra_up(self) -> None:
        """ZooKeeper, 3 Kafka nodes, 4 ClickHouse servers; topics (replication 3) and the cluster schema."""
        self.nodes.up()
        ensure_topics(self.settings)
        ensure_database(self.settings).close()

    def down(self) -> list[str]:
        """The services first (they flush), then the engines; a single-node stack in the same data dir stays."""
        return self.stop_services() + self.nodes.down()

    def infra_status(self) -> list[dict[str, str]]:
        rows = []
        zk = self.nodes.zookeeper
        try:
            zk_version, zk_ok = zk.version(), zk.ready()
        except OSError:
            zk_version, zk_ok = "?", False
        rows.append(_row("zookeeper", "zookeeper", zk.pid(), zk.address, zk_ok, f"Apache ZooKeeper {zk_version}"))
        for kafka in self.nodes.kafka:
            try:
                ok = kafka.ready()
            except Exception:  # noqa: BLE001 - status reports, it does not fail
                ok = False
            rows.append(_row(kafka.name, "kafka", kafka.procs.pid(kafka.name), kafka.address, ok,
                             f"Apache Kafka {kafka.jar_version() or '?'} (KRaft, node {kafka.spec.node_id})"))
        for node, spec in zip(self.nodes.clickhouse, self.nodes.layout.clickhouse, strict=True):
            version, ok = "?", False
            try:
                db = connect(node.own.as_account(clickhouse="admin"), database="system")
                try:
                    version, ok = str(db.execute("SELECT version()")[0][0]), True
                finally:
                    db.close()
            except Exception as exc:  # noqa: BLE001 - status reports a server that does not answer as down
                logger.debug("%s does not answer: %s", node.name, exc)
            row = _row(node.name, "clickhouse", node.server_pid(), node.address, ok,
                       f"ClickHouse {version} (shard {spec.shard}, replica {spec.replica})")
            if ok and ddl_stalled(node):
                row["health"] = "ddl-stalled"  # `truyvet up --cluster` restarts it
            rows.append(row)
        return rows


def _row(name: str, kind: str, pid: int | None, address: str, ok: bool, version: str) -> dict[str, str]:
    return {"name": name, "kind": kind, "pid": str(pid or "-"), "address": address,
            "health": "up" if ok else "down", "version": version}
