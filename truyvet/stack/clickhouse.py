"""ClickHouse server from Debian's package, run with the project's own config (not the system service)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from truyvet import secretstore
from truyvet.exceptions import StackError
from truyvet.schema import apply_migrations, connect
from truyvet.schema.databases import companions
from truyvet.schema.db import DatabaseError, DriverDatabase
from truyvet.schema.migrate import DDL_TIMEOUT
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.clickhouse_users import render_users_xml
from truyvet.stack.processes import ProcessDir, lax_umask, port_open, wait_until

logger = logging.getLogger(__name__)

DEPLOY = PROJECT_ROOT / "deploy" / "clickhouse"
NAME = "clickhouse"
# The databases the retention account may use (it drops expired partitions there), one per line.
RETENTION_FILE = "retention-databases"  # the data databases the limited accounts may use (name kept for installs)


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
                 extra: dict[str, Callable[[], str]] | None = None) -> None:
        self.settings = settings
        self.name = name
        self.home = home or settings.data_dir / "clickhouse"
        self.procs = ProcessDir(settings.data_dir)
        self.host = settings.clickhouse_host
        self.tcp_port = tcp_port or settings.clickhouse_port
        self.http_port = http_port or settings.clickhouse_http_port
        # relative path under home (config.d/x.xml, users.d/x.xml) -> its content, made when configured
        self.extra = extra or {}
        # This server alone (its own port, no alternates): readiness and account checks ask it.
        self.own = settings.model_copy(update={"clickhouse_port": self.tcp_port, "clickhouse_alt_hosts": ""})

    @property
    def address(self) -> str:
        return f"{self.host}:{self.tcp_port}"

    def configure(self) -> Path:
        secretstore.make_private_dir(self.home)
        for sub in ("data", "tmp", "user_files", "format_schemas", "logs"):
            secretstore.make_private_dir(self.home / sub)
        config = (DEPLOY / "config.xml").read_text().format(
            dir=self.home, host=self.host, http_port=self.http_port, tcp_port=self.tcp_port,
        )
        _write_private(self.home / "config.xml", config)
        self.write_users()
        for relative, content in self.extra.items():
            secretstore.make_private_dir((self.home / relative).parent)
            _write_private(self.home / relative, content())
        secretstore.restrict_tree(self.home)
        return self.home / "config.xml"

    # -- accounts --------------------------------------------------------------------------------
    def passwords(self) -> dict[str, str]:
        data_dir = self.settings.data_dir
        return {account: secretstore.ensure_secret(data_dir, secretstore.clickhouse_password_name(account))
                for account in secretstore.CLICKHOUSE_ACCOUNTS}

    def listed_data_databases(self) -> set[str]:
        try:
            return set((self.home / RETENTION_FILE).read_text().split())
        except FileNotFoundError:
            return set()

    def data_databases(self) -> set[str]:
        return self.listed_data_databases() | {self.settings.clickhouse_database}

    def write_users(self, data_databases: set[str] | None = None) -> None:
        """(Re)write users.xml; a running server reads it again within seconds (no restart)."""
        databases = data_databases if data_databases is not None else self.data_databases()
        _write_private(self.home / RETENTION_FILE, "".join(f"{d}\n" for d in sorted(databases)))
        _write_private(self.home / "users.xml", render_users_xml(self.passwords(), limited_databases=databases))

    def manages_users(self) -> bool:
        """True when this data dir's server is the one on the configured port (we write its users.xml);
        settings that point at another server (a test's own, on its own port) leave this one's alone."""
        try:
            listens = f"<tcp_port>{self.tcp_port}</tcp_port>" in (self.home / "config.xml").read_text()
        except FileNotFoundError:
            return False
        return listens and (self.home / "users.xml").exists() and self.procs.pid(self.name) is not None

    def allow_database(self, database: str, *, wait: bool = False) -> None:
        """Let the accounts held to listed databases (retention, worker, dispatcher: clickhouse_users.py)
        use ``database`` (a test's own database, say); the list keeps only databases that still exist. The
        server is told to read users.xml again at once (``SYSTEM RELOAD CONFIG``; on its own it looks every
        2 s): ``wait`` until it has (a worker or dispatcher started before would be refused the database)."""
        if not self.manages_users():
            return
        if database not in self.listed_data_databases():
            db = connect(self.own.as_account(clickhouse="admin"), database="system")
            try:
                existing = {str(r[0]) for r in db.execute("SELECT name FROM system.databases")}
                self.write_users((self.data_databases() & existing) | {database})
                db.execute("SYSTEM RELOAD CONFIG")
            finally:
                db.close()
        if wait:
            wait_until(lambda: self._can_use(database), timeout=30, what=f"limited accounts let into {database}")

    def _can_use(self, database: str) -> bool:
        db = connect(self.own.as_account(clickhouse="retention"), database=database)
        try:
            db.execute("SELECT 1")
            return True
        finally:
            db.close()

    def admin_ready(self) -> bool:
        """The admin account authenticates (users.xml read by the server)."""
        db = connect(self.own.as_account(clickhouse="admin"), database="system")
        try:
            db.execute("SELECT 1")
            return True
        finally:
            db.close()

    def start(self, *, timeout: float = 60) -> int | None:
        pid = self.procs.pid(self.name)
        if lax_umask(self.server_pid()):
            logger.warning("our ClickHouse (pid %s) writes files others may read: restarting it", pid)
            self.stop()
            pid = None
        if pid is None and port_open(self.host, self.tcp_port):
            logger.info("ClickHouse already listening on %s:%s (not ours); using it", self.host, self.tcp_port)
            return None
        if pid is not None:
            # Ours and running (maybe an install from before the accounts): its users.xml is rewritten
            # and the server picks it up by itself.
            self.write_users()
            secretstore.restrict_tree(self.home)
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
            wait_until(self.admin_ready, timeout=timeout, what=f"ClickHouse admin account on {self.address}")
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


def _write_private(path: Path, text: str) -> None:
    with secretstore.private_umask():
        path.write_text(text)
    path.chmod(0o600)


def ensure_database(settings: CommonSettings, *, wait_for_accounts: bool = True) -> DriverDatabase:
    """Create the configured database if missing and apply the migrations (as the admin); return an
    admin client on it. The accounts held to listed databases are let into it (never into its audit
    database; retention also into its personal one); ``wait_for_accounts``: until the server has read
    that change (a check of one connection when the database was listed already)."""
    on_cluster = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clustered else ""
    admin = settings.as_account(clickhouse="admin")
    bootstrap = connect(admin, database="system")
    try:
        bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS {settings.clickhouse_database}{on_cluster}")
    finally:
        bootstrap.close()
    db = connect(admin)
    try:
        apply_migrations(db, cluster=settings.clickhouse_cluster if settings.clustered else None)
    except DatabaseError as exc:
        _heal_ddl_or_raise(settings, exc, "migrations")
        db.close()
        db = connect(admin)
        apply_migrations(db, cluster=settings.clickhouse_cluster)
    if settings.clustered:  # every server of the cluster lets the retention account in
        from truyvet.stack.cluster import ClusterNodes  # the cluster module builds on this one

        for node in ClusterNodes(settings).clickhouse:
            node.allow_database(settings.clickhouse_database, wait=wait_for_accounts)
    else:
        ClickHouseNode(settings).allow_database(settings.clickhouse_database, wait=wait_for_accounts)
    return db


def _heal_ddl_or_raise(settings: CommonSettings, exc: DatabaseError, what: str) -> None:
    """After ``ON CLUSTER`` DDL timed out: 18.16's DDL worker of a server can end for good (after ZooKeeper
    was away), so every statement waits for it. Restart such servers of ours, as `truyvet up --cluster`
    does, so the caller can try again; any other failure is raised."""
    if not settings.clustered or exc.context.get("code") != DDL_TIMEOUT:
        raise exc
    from truyvet.stack.cluster import ClusterNodes  # the cluster module builds on this one

    healed = ClusterNodes(settings).restart_ddl_stalled()
    if not healed:
        raise exc
    logger.warning("%s timed out: the DDL worker of %s had ended; restarted them, trying again", what, healed)


def drop_databases(settings: CommonSettings, database: str | None = None) -> None:
    """``DROP DATABASE IF EXISTS`` (on every server of the cluster on the cluster profile)."""
    on_cluster = f" ON CLUSTER {settings.clickhouse_cluster}" if settings.clustered else ""
    name = database or settings.clickhouse_database
    db = connect(settings.as_account(clickhouse="admin"), database="system")
    try:
        for each in (*companions(name), name):  # migrations 0070 and 0094 keep audit and personal apart
            try:
                db.execute(f"DROP DATABASE IF EXISTS {each}{on_cluster}")
            except DatabaseError as exc:
                _heal_ddl_or_raise(settings, exc, f"DROP DATABASE {each}")
                db.execute(f"DROP DATABASE IF EXISTS {each}{on_cluster}")
    finally:
        db.close()


def server_version(settings: CommonSettings) -> str:
    db = connect(settings.as_account(clickhouse="admin"), database="system")
    try:
        return str(db.execute("SELECT version()")[0][0])
    finally:
        db.close()
