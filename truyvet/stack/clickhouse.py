"""ClickHouse server from Debian's package, run with the project's own config (not the system service)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from truyvet.exceptions import StackError
from truyvet.schema import apply_migrations, connect
from truyvet.schema.db import DriverDatabase
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.processes import ProcessDir, port_open, wait_until

logger = logging.getLogger(__name__)

DEPLOY = PROJECT_ROOT / "deploy" / "clickhouse"
NAME = "clickhouse"


def server_binary() -> list[str] | None:
    """The server command: Debian's ``clickhouse-server`` or the single ``clickhouse`` binary."""
    for candidate in ("clickhouse-server", "/usr/sbin/clickhouse-server"):
        path = shutil.which(candidate)
        if path:
            return [path]
    path = shutil.which("clickhouse")
    return [path, "server"] if path else None


def install_package() -> None:
    """``apt-get install clickhouse-server`` (as root), refreshing the package lists if needed."""
    if os.geteuid() != 0:
        raise StackError("clickhouse-server is missing; install it (sudo apt-get install clickhouse-server)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        result = subprocess.run(["apt-get", "install", "-y", "-qq", "clickhouse-server", "clickhouse-client"],
                                env=env, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
    raise StackError("apt-get install clickhouse-server failed", output=result.stderr[-2000:])


class ClickHouseNode:
    """One server. The defaults are the single-node stack; the cluster profile makes four with their own
    ``name``, ``home``, ports and extra files merged into the config (``config.d/``, ``users.d/``)."""

    def __init__(self, settings: CommonSettings, *, name: str = NAME, home: Path | None = None,
                 tcp_port: int | None = None, http_port: int | None = None,
                 extra: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.name = name
        self.home = home or settings.data_dir / "clickhouse"
        self.procs = ProcessDir(settings.data_dir)
        self.host = settings.clickhouse_host
        self.tcp_port = tcp_port or settings.clickhouse_port
        self.http_port = http_port or settings.clickhouse_http_port
        self.extra = extra or {}  # relative path under home (config.d/x.xml, users.d/x.xml) -> content

    @property
    def address(self) -> str:
        return f"{self.host}:{self.tcp_port}"

    def configure(self) -> Path:
        for sub in ("data", "tmp", "user_files", "format_schemas", "logs"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        config = (DEPLOY / "config.xml").read_text().format(
            dir=self.home, host=self.host, http_port=self.http_port, tcp_port=self.tcp_port,
        )
        (self.home / "config.xml").write_text(config)
        shutil.copyfile(DEPLOY / "users.xml", self.home / "users.xml")
        for relative, content in self.extra.items():
            (self.home / relative).parent.mkdir(parents=True, exist_ok=True)
            (self.home / relative).write_text(content)
        return self.home / "config.xml"

    def start(self, *, timeout: float = 60) -> int | None:
        pid = self.procs.pid(self.name)
        if pid is None and port_open(self.host, self.tcp_port):
            logger.info("ClickHouse already listening on %s:%s (not ours); using it", self.host, self.tcp_port)
            return None
        if pid is None:
            binary = server_binary()
            if binary is None:
                install_package()
                binary = server_binary()
            if binary is None:
                raise StackError("clickhouse-server not found after install")
            config = self.configure()
            pid = self.procs.start(self.name, [*binary, f"--config-file={config}"], cwd=self.home)
        if timeout:
            wait_until(self.ready, timeout=timeout, what=f"ClickHouse on {self.address}")
        return pid

    def ready(self) -> bool:
        url = f"http://{self.host}:{self.http_port}/ping"
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL from settings
            return bool(response.read().strip() == b"Ok.")

    def stop(self) -> bool:
        return self.procs.stop(self.name, timeout=30)

    def server_pid(self) -> int | None:
        """The pid of the server itself: the launched process, or the child it forked when it runs as
        its own watchdog (a signal to the watchdog is not one to the server)."""
        pid = self.procs.pid(self.name)
        if pid is None:
            return None
        children: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                children += [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                continue
        return children[0] if children else pid


def ensure_database(settings: CommonSettings) -> DriverDatabase:
    """Create the configured database if missing and apply the migrations; return a client on it."""
    on_cluster = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clustered else ""
    bootstrap = connect(settings, database="default")
    try:
        bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS {settings.clickhouse_database}{on_cluster}")
    finally:
        bootstrap.close()
    db = connect(settings)
    apply_migrations(db, cluster=settings.clickhouse_cluster if settings.clustered else None)
    return db


def drop_database(settings: CommonSettings, database: str | None = None) -> None:
    """``DROP DATABASE IF EXISTS`` (on every server of the cluster on the cluster profile)."""
    on_cluster = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clustered else ""
    db = connect(settings, database="default")
    try:
        db.execute(f"DROP DATABASE IF EXISTS {database or settings.clickhouse_database}{on_cluster}")
    finally:
        db.close()


def server_version(settings: CommonSettings) -> str:
    db = connect(settings, database="default")
    try:
        return str(db.execute("SELECT version()")[0][0])
    finally:
        db.close()
