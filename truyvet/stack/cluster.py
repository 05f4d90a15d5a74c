"""The cluster profile on one machine (issue 12): ZooKeeper, 3 Kafka nodes (broker + controller each, a
3-voter KRaft quorum), 4 ClickHouse 18.16 servers forming cluster ``truyvet`` (2 shards x 2 replicas),
then the services pointed at all of them.

Ports (docs/operations.md "Cluster profile"): node ``i`` (0-based) of a kind listens on the single-node
port + 10 x i, so the first node keeps the defaults: Kafka 9092/9102/9112 (controllers 9093/9103/9113),
ClickHouse native 9000/9010/9020/9030, HTTP 8123/8133/8143/8153, interserver 9009/9019/9029/9039,
ZooKeeper 2181. The environment that moves the single-node ports moves the cluster's with them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from truyvet.exceptions import StackError
from truyvet.settings import PROFILE_ENV, PROJECT_ROOT, CommonSettings
from truyvet.stack.clickhouse import ClickHouseNode
from truyvet.stack.kafka import DEPLOY as KAFKA_DEPLOY
from truyvet.stack.kafka import KafkaNode, KafkaNodeConfig, _cluster_id, _host_port
from truyvet.stack.zookeeper import ZooKeeperNode

logger = logging.getLogger(__name__)

KAFKA_NODES = 3
SHARDS = 2
REPLICAS = 2
STEP = 10  # port distance between two nodes of a kind
CH_DEPLOY = PROJECT_ROOT / "deploy" / "clickhouse"
DDL_QUEUE = "/clickhouse/task_queue/ddl"  # deploy/clickhouse/cluster.xml <distributed_ddl>
# An ON CLUSTER task this old that a server answering queries has not finished: its DDL worker has ended.
DDL_STALL_SECONDS = 60
DDL_WORKER_ENDED = "DDLWorker: Unexpected error, will terminate"  # 18.16's last words of that worker
# ... or these, ending in "Terminating." after the stack trace: a replicated ALTER ON CLUSTER run by both
# replicas of a shard ("Node exists: .../shards/<shard>/executed"), seen minutes after a ZooKeeper outage
DDL_WORKER_ENDED_ZK = "DDLWorker: Unexpected ZooKeeper error"


@dataclass(frozen=True)
class ClickHouseSpec:
    index: int  # 1-based: clickhouse-1 ... clickhouse-4
    shard: int
    replica: int
    tcp_port: int
    http_port: int
    interserver_port: int

    @property
    def name(self) -> str:
        return f"clickhouse-{self.index}"


@dataclass(frozen=True)
class KafkaSpec:
    node_id: int
    port: int
    controller_port: int

    @property
    def name(self) -> str:
        return f"kafka-{self.node_id}"


class Layout:
    """Names and ports of every node, derived from the (single-node) settings."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.host, base = _host_port(settings.kafka_bootstrap)
        self.kafka = [KafkaSpec(i + 1, base + STEP * i, settings.kafka_controller_port + STEP * i)
                      for i in range(KAFKA_NODES)]
        self.clickhouse = [
            ClickHouseSpec(i + 1, i // REPLICAS + 1, i % REPLICAS + 1, settings.clickhouse_port + STEP * i,
                           settings.clickhouse_http_port + STEP * i, settings.clickhouse_port + 9 + STEP * i)
            for i in range(SHARDS * REPLICAS)]
        self.home = settings.data_dir / "cluster"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{k.port}" for k in self.kafka)

    @property
    def alt_hosts(self) -> str:
        return ",".join(f"{self.settings.clickhouse_host}:{c.tcp_port}" for c in self.clickhouse[1:])

    def client_env(self) -> dict[str, str]:
        """What every service and command needs to use the cluster (written to ``profile.env``)."""
        return {"TRUYVET_PROFILE": "cluster", "TRUYVET_KAFKA_BOOTSTRAP": self.bootstrap,
                "TRUYVET_CLICKHOUSE_PORT": str(self.clickhouse[0].tcp_port),
                "TRUYVET_CLICKHOUSE_HTTP_PORT": str(self.clickhouse[0].http_port),
                "TRUYVET_CLICKHOUSE_ALT_HOSTS": self.alt_hosts,
                "TRUYVET_CLICKHOUSE_CLUSTER": self.settings.clickhouse_cluster}

    def client_settings(self) -> CommonSettings:
        return self.settings.model_copy(update={
            "profile": "cluster", "kafka_bootstrap": self.bootstrap, "clickhouse_alt_hosts": self.alt_hosts,
            "clickhouse_port": self.clickhouse[0].tcp_port, "clickhouse_http_port": self.clickhouse[0].http_port})

    def remote_servers(self, *, user: str, password: str) -> str:
        """The shards' replicas; servers query each other as ``user`` (18.16 does not pass the caller's)."""
        login = f"<user>{escape(user)}</user><password>{escape(password)}</password>"
        shards = []
        for shard in range(1, SHARDS + 1):
            replicas = "".join(
                f"<replica><host>{self.settings.clickhouse_host}</host><port>{c.tcp_port}</port>{login}</replica>"
                for c in self.clickhouse if c.shard == shard)
            shards.append(f"      <shard><internal_replication>true</internal_replication>{replicas}</shard>")
        return "\n".join(shards)


class ClusterKafkaNode(KafkaNode):
    """A node of the 3-node quorum: its own properties, the shared cluster id and directory ids."""

    template = KAFKA_DEPLOY / "cluster.properties"
    heap = "512m"

    def __init__(self, settings: CommonSettings, layout: Layout, spec: KafkaSpec) -> None:
        super().__init__(settings, name=spec.name, home=layout.home / spec.name,
                         address=f"{layout.host}:{spec.port}", controller_port=spec.controller_port,
                         libs=settings.data_dir / "kafka" / "libs")
        self.layout = layout
        self.spec = spec

    def render(self, node: KafkaNodeConfig) -> str:
        quorum = ",".join(f"{self.layout.host}:{k.controller_port}" for k in self.layout.kafka)
        return self.template.read_text().format(
            host=node.host, port=node.port, controller_port=node.controller_port, log_dirs=node.log_dirs,
            admin_password=node.admin_password, node_id=self.spec.node_id, quorum=quorum)

    def format_options(self) -> tuple[str, list[str]]:
        ids = quorum_ids(self.layout)
        controllers = ",".join(f"{k.node_id}@{self.layout.host}:{k.controller_port}:{ids['directories'][k.name]}"
                               for k in self.layout.kafka)
        return ids["cluster"], ["--initial-controllers", controllers]


def quorum_ids(layout: Layout) -> dict:  # type: ignore[type-arg]
    """The Kafka cluster id and each node's metadata directory id, made once and kept (every node is
    formatted with the same ``--initial-controllers`` list, also one formatted again after its disk went)."""
    path = layout.home / "kafka-quorum.json"
    if path.exists():
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    ids = {"cluster": _cluster_id(),
           "directories": {k.name: _directory_id() for k in layout.kafka}}
    layout.home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids))
    return ids


def _directory_id() -> str:
    while True:  # like Kafka's Uuid: base64url of 16 random bytes, never starting with "-"
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def clickhouse_node(settings: CommonSettings, layout: Layout, spec: ClickHouseSpec) -> ClickHouseNode:
    def config() -> str:  # made at start: the admin password exists once the installation's secrets do
        admin = settings.as_account(clickhouse="admin")
        return (CH_DEPLOY / "cluster.xml").read_text().format(
            host=settings.clickhouse_host, interserver_port=spec.interserver_port,
            cluster=settings.clickhouse_cluster,
            shards=layout.remote_servers(user="admin", password=admin.clickhouse_secret()),
            zookeeper_port=settings.zookeeper_port, shard=f"{spec.shard:02d}", replica=spec.name)

    def users() -> str:
        return (CH_DEPLOY / "cluster-users.xml").read_text()

    return ClickHouseNode(settings, name=spec.name, home=layout.home / spec.name, tcp_port=spec.tcp_port,
                          http_port=spec.http_port,
                          extra={"config.d/cluster.xml": config, "users.d/cluster.xml": users})


def wait_started(node: KafkaNode | ClickHouseNode, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Until ``ready``; a node whose process exited fails at once, with the end of its log."""

    def check() -> bool:
        if node.procs.pid(node.name) is None and not ready():
            raise StackError(f"{what} exited at start", log=node.procs.log_file(node.name).read_text()[-1500:])
        return ready()

    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except StackError:
            raise
        except Exception:  # noqa: BLE001, S110 - not answering yet
            pass
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.25)


def host_id(host: str, port: int) -> str:
    """How a ClickHouse server names itself in the DDL queue: its host escaped as a file name
    (every byte but ``[A-Za-z0-9_]`` as ``%XX``), a colon, its native port."""
    escaped = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "".join(f"%{b:02X}" for b in c.encode())
                      for c in host)
    return f"{escaped}:{port}"


def ddl_stalled(node: ClickHouseNode) -> bool:
    """Whether this server answers but its ON CLUSTER DDL worker has ended.

    ClickHouse 18.16's DDL worker can end for good after ZooKeeper was away ("Server expects that DDL
    task ... should be processed, but it was already processed according to ZK ... will terminate"):
    the server keeps serving and replicating, but every later ``ON CLUSTER`` statement (a migration, a
    database dropped) waits for it until ``distributed_ddl_task_timeout``. Two signs, either is enough:
    its error log says so since the server process started, or the newest task of the queue older than
    ``DDL_STALL_SECONDS`` that names this server has no ``finished`` entry of it. A server that does
    not answer, or cannot reach ZooKeeper, is not called stalled (it is down, or nothing can be told)."""
    from truyvet.schema import connect

    if _worker_ended_since_start(node):
        return True
    me = host_id(node.host, node.tcp_port)
    try:
        db = connect(node.own.as_account(clickhouse="admin"), database="system")
    except Exception:  # noqa: BLE001 - not answering: down, not stalled
        return False
    try:
        tasks = db.execute(
            "SELECT name, value FROM system.zookeeper WHERE path = %(p)s AND ctime < now() - %(age)s",
            {"p": DDL_QUEUE, "age": DDL_STALL_SECONDS})
        mine = sorted(name for name, value in tasks if me in value)
        if not mine:
            return False
        finished = db.execute("SELECT name FROM system.zookeeper WHERE path = %(p)s",
                              {"p": f"{DDL_QUEUE}/{mine[-1]}/finished"})
        return me not in {name for (name,) in finished}
    except Exception as exc:  # noqa: BLE001 - ZooKeeper away: cannot tell
        logger.debug("DDL queue of %s not readable: %s", node.name, exc)
        return False
    finally:
        db.close()


def _worker_ended_since_start(node: ClickHouseNode) -> bool:
    """The server's error log has the DDL worker's last words after the server process started.

    Both times to the millisecond: a server restarted within a second of its predecessor's last words
    must not inherit them (the boot time in /proc/stat is whole seconds; /proc/uptime is not)."""
    pid = node.server_pid()
    log = node.home / "logs" / "error.log"
    if pid is None or not log.exists():
        return False
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 4 * 2**20))
            tail = f.read().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return False
    started = time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    ended = [line for line in tail.splitlines() if DDL_WORKER_ENDED in line or DDL_WORKER_ENDED_ZK in line]
    if not ended:
        return False
    line = ended[-1]
    try:  # "2026.12.02 12:46:30.160179 [ 40 ] {} <Error> DDLWorker: ..." in the server's local time
        when = time.mktime(time.strptime(line[:19], "%Y.%m.%d %H:%M:%S"))
        when += float("0" + line[19:26]) if line[19:20] == "." else 0.0
    except ValueError:
        return False
    return when >= started - 0.05  # /proc's ticks are 10 ms


class ClusterNodes:
    """The engines of the cluster profile: start (only what is down), stop, and where they are."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.layout = Layout(settings)
        self.zookeeper = ZooKeeperNode(settings, home=self.layout.home / "zookeeper")
        self.kafka = [ClusterKafkaNode(settings, self.layout, spec) for spec in self.layout.kafka]
        self.clickhouse = [clickhouse_node(settings, self.layout, spec) for spec in self.layout.clickhouse]

    def restart_ddl_stalled(self, *, wait: bool = True) -> list[str]:
        """Restart each running server of ours whose ON CLUSTER DDL worker has ended (:func:`ddl_stalled`);
        return their names. ``wait``: until they answer again (``up`` waits for every server itself)."""
        healed = []
        for node in self.clickhouse:
            if node.procs.pid(node.name) is not None and ddl_stalled(node):
                logger.warning("ClickHouse %s: its ON CLUSTER DDL worker has ended (after a ZooKeeper outage); "
                               "restarting it", node.name)
                node.stop()
                node.start(timeout=60 if wait else 0)
                healed.append(node.name)
        return healed

    def up(self, *, timeout: float = 180) -> None:
        """ZooKeeper first (18.16 aborts at start when its replicated tables' ZooKeeper is down), then every
        ClickHouse server and Kafka node at once, then wait for them all."""
        self.zookeeper.start()
        if self.kafka[0].jar_version() is None:
            self.kafka[0].install()
        self.restart_ddl_stalled(wait=False)
        for node in self.clickhouse:
            node.start(timeout=0)
        for kafka in self.kafka:
            kafka.start(timeout=0)
        for node in self.clickhouse:
            wait_started(node, node.ready, timeout=timeout, what=f"ClickHouse {node.name} on {node.address}")
        for kafka in self.kafka:
            wait_started(kafka, kafka.ready, timeout=timeout, what=f"Kafka {kafka.name} on {kafka.address}")
        self.write_profile()

    def write_profile(self) -> Path:
        path = self.settings.data_dir / PROFILE_ENV
        path.write_text("".join(f"{k}={v}\n" for k, v in self.layout.client_env().items()))
        return path

    def down(self) -> list[str]:
        """Kafka and ClickHouse first, ZooKeeper last (the servers leave their sessions cleanly)."""
        with ThreadPoolExecutor(len(self.kafka) + len(self.clickhouse)) as pool:  # each may take seconds
            kafka = list(pool.map(lambda k: k.stop(), self.kafka))
            clickhouse = list(pool.map(lambda c: c.stop(), self.clickhouse))
        stopped = [k.name for k, was in zip(self.kafka, kafka, strict=True) if was]
        stopped += [c.name for c, was in zip(self.clickhouse, clickhouse, strict=True) if was]
        if self.zookeeper.stop():
            stopped.append("zookeeper")
        (self.settings.data_dir / PROFILE_ENV).unlink(missing_ok=True)
        return stopped

    def resident_bytes(self) -> dict[str, int]:
        """Resident memory of each running engine process (for benchmarks and the tests' report)."""
        out = {}
        pids = {"zookeeper": self.zookeeper.pid()} | {k.name: k.procs.pid(k.name) for k in self.kafka} \
            | {c.name: c.server_pid() for c in self.clickhouse}
        for name, pid in pids.items():
            try:
                status = Path(f"/proc/{pid}/status").read_text() if pid else ""
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    out[name] = int(line.split()[1]) * 1024
        return out

    def running(self) -> bool:
        return any(n.procs.pid(n.name) for n in [*self.kafka, *self.clickhouse]) or self.zookeeper.pid() is not None
