"""Apache ZooKeeper, standalone, from Maven Central jars: ClickHouse 18.16's replication coordinator in the
cluster profile (18.16 has no ClickHouse Keeper). Jars resolved by ``deploy/zookeeper/pom.xml``."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.processes import ProcessDir, port_open, resolve_jars, wait_until

logger = logging.getLogger(__name__)

DEPLOY = PROJECT_ROOT / "deploy" / "zookeeper"
NAME = "zookeeper"


def four_letter(host: str, port: int, word: str, *, timeout: float = 2) -> str:
    """Send a four-letter command (``ruok``, ``srvr``) and return the answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperNode:
    def __init__(self, settings: CommonSettings, *, home: Path) -> None:
        self.settings = settings
        self.home = home
        self.libs = home / "libs"
        self.data = home / "data"
        self.procs = ProcessDir(settings.data_dir)
        self.host = settings.clickhouse_host
        self.port = settings.zookeeper_port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def jar_version(self) -> str | None:
        if not list(self.libs.glob("snappy-java-*.jar")):
            return None  # an install from before snappy was listed: resolve again
        jars = sorted(self.libs.glob("zookeeper-3*.jar"))
        return jars[-1].name.removeprefix("zookeeper-").removesuffix(".jar") if jars else None

    def install(self) -> None:
        """Resolve the jars with Maven (once)."""
        resolve_jars(DEPLOY / "pom.xml", self.libs, "ZooKeeper", lambda: self.jar_version() is not None)

    def configure(self) -> Path:
        self.data.mkdir(parents=True, exist_ok=True)
        target = self.home / "zoo.cfg"
        target.write_text((DEPLOY / "zoo.cfg").read_text().format(data_dir=self.data, port=self.port, host=self.host))
        return target

    def start(self, *, timeout: float = 60) -> int | None:
        pid = self.procs.pid(NAME)
        if pid is None and port_open(self.host, self.port):
            logger.info("ZooKeeper already listening on %s (not ours); using it", self.address)
            return None
        if pid is None:
            self.install()
            config = self.configure()
            argv = ["java", "-Xms64m", "-Xmx256m", f"-Dlogback.configurationFile={DEPLOY / 'logback.xml'}",
                    "-Dzookeeper.admin.enableServer=false", "-cp", f"{self.libs}/*",
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(config)]
            pid = self.procs.start(NAME, argv, cwd=self.home)
        wait_until(self.ready, timeout=timeout, what=f"ZooKeeper on {self.address}")
        return pid

    def ready(self) -> bool:
        """Serving: ``srvr`` names its mode (``ruok`` answers ``imok`` even while the server failed to start)."""
        return port_open(self.host, self.port) and "Mode: " in four_letter(self.host, self.port, "srvr")

    def version(self) -> str:
        for line in four_letter(self.host, self.port, "srvr").splitlines():
            if line.startswith("Zookeeper version:"):
                return line.split(":", 1)[1].split("-", 1)[0].split(",")[0].strip()
        return "?"

    def pid(self) -> int | None:
        return self.procs.pid(NAME)

    def stop(self) -> bool:
        return self.procs.stop(NAME, timeout=30)
