"""Apache Kafka 4.x, single node, KRaft: jars from Maven Central, storage formatted once."""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from truyvet import secretstore
from truyvet.events import Topics
from truyvet.exceptions import StackError
from truyvet.kafka_clients import client_kwargs
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.kafka_accounts import ensure_accounts
from truyvet.stack.processes import ProcessDir, lax_umask, port_open, resolve_jars, wait_until

logger = logging.getLogger(__name__)

DEPLOY = PROJECT_ROOT / "deploy" / "kafka"
NAME = "kafka"


# Written next to the storage once it is formatted with the SCRAM admin: a storage without it predates
# authentication (a plaintext install) and is reformatted on a development install (SECURITY.md).
SASL_MARKER = "sasl-scram-formatted"


def _host_port(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return host, int(port)


@dataclass(frozen=True)
class KafkaNodeConfig:
    """What one broker's ``server.properties`` needs (a cluster renders one per node)."""

    host: str
    port: int
    controller_port: int
    log_dirs: Path
    admin_password: str


def render_server_properties(node: KafkaNodeConfig, template: str | None = None) -> str:
    text = template if template is not None else (DEPLOY / "server.properties").read_text()
    return text.format(host=node.host, port=node.port, controller_port=node.controller_port,
                       log_dirs=node.log_dirs, admin_password=node.admin_password)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (it may hold passwords)."""
    with secretstore.private_umask():
        path.write_text(text)
    path.chmod(0o600)


class KafkaNode:
    """One broker (+ controller). The defaults are the single-node stack; the cluster profile makes three
    with their own ``name``, ``home``, ports and a shared ``libs`` (truyvet/stack/cluster.py)."""

    template = DEPLOY / "server.properties"
    heap = "1g"

    def __init__(self, settings: CommonSettings, *, name: str = NAME, home: Path | None = None,
                 address: str | None = None, controller_port: int | None = None, libs: Path | None = None) -> None:
        self.settings = settings
        self.name = name
        self.home = home or settings.data_dir / "kafka"
        self.libs = libs or self.home / "libs"
        self.data = self.home / "data"
        self.procs = ProcessDir(settings.data_dir)
        self.host, self.port = _host_port(address or settings.kafka_bootstrap)
        self.controller_port = controller_port or settings.kafka_controller_port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- install ---------------------------------------------------------------------------------
    def jar_version(self) -> str | None:
        jars = sorted(self.libs.glob("kafka_2.13-*.jar"))
        return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else None

    def install(self) -> None:
        """Resolve the jars with Maven (once)."""
        resolve_jars(DEPLOY / "pom.xml", self.libs, "Kafka", lambda: self.jar_version() is not None)

    def _java(self, *args: str) -> list[str]:
        return ["java", "-Xms256m", f"-Xmx{self.heap}", f"-Dlog4j2.configurationFile={DEPLOY / 'log4j2.yaml'}",
                "-cp", f"{self.libs}/*", *args]

    def node_config(self) -> KafkaNodeConfig:
        admin_password = secretstore.ensure_secret(self.settings.data_dir, secretstore.kafka_password_name("admin"))
        return KafkaNodeConfig(self.host, self.port, self.controller_port, self.data, admin_password)

    def render(self, node: KafkaNodeConfig) -> str:
        """This node's ``server.properties`` (a cluster node adds its id and the quorum)."""
        return render_server_properties(node, self.template.read_text())

    def format_options(self) -> tuple[str, list[str]]:
        """(cluster id, quorum options) for the storage tool: a new id and a quorum of this node alone."""
        return _cluster_id(), ["--standalone"]

    def configure(self) -> Path:
        node = self.node_config()
        secretstore.make_private_dir(self.home)
        target = self.home / "server.properties"
        write_private(target, self.render(node))
        if (self.data / "meta.properties").exists() and not (self.home / SASL_MARKER).exists():
            self._upgrade_plaintext_storage()
        if not (self.data / "meta.properties").exists():
            secretstore.make_private_dir(self.data)
            cluster_id, quorum = self.format_options()
            # The admin's SCRAM credential goes into the metadata at format time: the broker needs it
            # to authenticate to itself; the other accounts are made through the admin API.
            result = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(target),
                           *quorum, "--ignore-formatted",
                           "--add-scram", f"SCRAM-SHA-512=[name=admin,password={node.admin_password}]"),
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise StackError("kafka storage format failed", output=(result.stdout + result.stderr)[-2000:])
            write_private(self.home / SASL_MARKER, "formatted with the SCRAM-SHA-512 admin\n")
        secretstore.restrict_tree(self.home)
        return target

    def _upgrade_plaintext_storage(self) -> None:
        """A storage formatted before authentication has no SCRAM admin: a development or test install is
        reformatted (its topics are made again, empty); a production one is left for the operator."""
        if self.settings.environment == "production":
            raise StackError("this Kafka storage predates SASL/SCRAM (no admin credential); see SECURITY.md, "
                             "'Upgrading an install that ran plaintext Kafka', to add the admin without "
                             "losing topics",
                             data=str(self.data))
        logger.warning("Kafka storage in %s predates SASL/SCRAM: reformatting it (development install)", self.data)
        shutil.rmtree(self.data)

    # -- run -------------------------------------------------------------------------------------
    def start(self, *, timeout: float = 90) -> int | None:
        """Start the broker unless one answers already; wait until it serves metadata."""
        pid = self.procs.pid(self.name)
        plaintext = pid is not None and "SASL_PLAINTEXT" not in self._running_config()
        if plaintext and self.settings.environment == "production" and not (self.home / SASL_MARKER).exists():
            raise StackError("the running Kafka has no authentication; see SECURITY.md, 'Upgrading an install "
                             "that ran plaintext Kafka' (left running)", pid=pid)
        if pid is not None and (plaintext or lax_umask(pid)):
            logger.warning("our Kafka (pid %s) runs without authentication or writes files others may read: "
                           "restarting it", pid)
            self.stop()
            pid = None
        if pid is None and port_open(self.host, self.port):
            logger.info("Kafka already listening on %s:%s (not ours); using it", self.host, self.port)
            return None
        if pid is None:
            self.install()
            config = self.configure()
            pid = self.procs.start(self.name, self._java("kafka.Kafka", str(config)))
        if timeout:
            wait_until(self.ready, timeout=timeout, what=f"Kafka on {self.address}")
        return pid

    def _running_config(self) -> str:
        try:
            return (self.home / "server.properties").read_text()
        except FileNotFoundError:
            return ""

    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False  # kafka-python leaks a socket on each refused bootstrap; do not ask it yet
        this_node = self.settings.model_copy(update={"kafka_bootstrap": self.address})
        admin = KafkaAdminClient(**client_kwargs(this_node.as_account(kafka="admin")), request_timeout_ms=3000)
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    def stop(self) -> bool:
        return self.procs.stop(self.name, timeout=30)


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them (base64url of 16 random bytes), never starting with "-":
    the storage tool would read such an id as an option and refuse to format (Kafka's own
    ``Uuid.randomUuid`` avoids them for the same reason; one fresh install in 64 hit it)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def topic_specs(settings: CommonSettings) -> list[NewTopic]:
    """Every topic the pipeline uses, with the partition counts and policies it needs."""
    n = settings.scans_partitions
    retention = str(settings.retention_days * 24 * 3600 * 1000)
    specs = [
        (Topics.SCANS, n, {"retention.ms": retention}),
        (Topics.SCANS_DLQ, 1, {"retention.ms": str(90 * 86400 * 1000)}),
        (Topics.VENUES, n, {"cleanup.policy": "compact"}),
        (Topics.ALERTS, n, {"retention.ms": retention}),
        # issue 6 (alerts): venue-keyed exposure windows + visit notices; undeliverable alerts.
        (Topics.EXPOSURE_MATCHING, n, {"retention.ms": retention}),
        (Topics.TRACED, n, {"cleanup.policy": "compact"}),
        (Topics.ALERTS_DLQ, 1, {"retention.ms": str(90 * 86400 * 1000)}),
    ]
    return [NewTopic(settings.topic(name), partitions, settings.replication_factor,
                     topic_configs={**configs, **replication_configs(settings)})
            for name, partitions, configs in specs]


def replication_configs(settings: CommonSettings) -> dict[str, str]:
    """Per-topic settings of the profile: on the cluster an ``acks=all`` write needs 2 of the 3 copies."""
    return {"min.insync.replicas": "2"} if settings.clustered else {}


def topics_led(admin: KafkaAdminClient, names: list[str]) -> bool:
    """Every partition of every topic in ``names`` has a leader (right after a start or a creation the
    broker may not know one yet)."""
    topics = admin.describe_topics(names)
    return len(topics) == len(names) and all(
        t["error_code"] == 0 and t["partitions"] and all(p["leader_id"] >= 0 for p in t["partitions"]) for t in topics)


def ensure_topics(settings: CommonSettings) -> list[str]:
    """Create the topics that do not exist yet, and the accounts and ACLs of the services for them;
    return the names created."""
    admin = KafkaAdminClient(**client_kwargs(settings.as_account(kafka="admin")), request_timeout_ms=15000)
    try:
        ensure_accounts(admin, settings)
        existing = set(admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        created = []
        for spec in missing:
            try:
                admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        names = [t.name for t in topic_specs(settings)]
        wait_until(lambda: topics_led(admin, names), timeout=60, what="Kafka topics with a leader per partition")
        return created
    finally:
        admin.close()
