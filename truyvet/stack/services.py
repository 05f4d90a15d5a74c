"""The whole local stack: Kafka, ClickHouse, ingest API, stream worker(s), trace API."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from truyvet.exceptions import StackError
from truyvet.secretstore import ensure_installation_secrets, make_private_dir
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack import ingest_pool
from truyvet.stack.clickhouse import ClickHouseNode, ensure_database, server_version
from truyvet.stack.ingest_pool import ingest_name
from truyvet.stack.kafka import KafkaNode, ensure_topics
from truyvet.stack.processes import ProcessDir, wait_until

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppService:
    name: str
    kind: str  # the contract's component kind: ingest, trace, worker, dispatcher
    argv: tuple[str, ...]
    address: str
    health_url: str
    env: tuple[tuple[str, str], ...] = ()


def account_env(account: str) -> tuple[tuple[str, str], ...]:
    """A service process connects to ClickHouse and Kafka as its own account (SECURITY.md)."""
    return (("TRUYVET_CLICKHOUSE_USER", account), ("TRUYVET_KAFKA_USERNAME", account))


def app_services(settings: CommonSettings, *, workers: int = 1, ingest_workers: int = 1) -> list[AppService]:
    py = sys.executable
    host = settings.bind_host
    # The ingest pool: processes sharing the ingest port with SO_REUSEPORT (ingest/serve.py, ingest_pool.py).
    services = [AppService(ingest_name(i), "ingest", (py, "-m", "ingest.serve"), settings.ingest_url,
                           f"{settings.ingest_url}/healthz", account_env("ingest")) for i in range(ingest_workers)]
    services += [
        AppService("trace", "trace", (py, "-m", "uvicorn", "trace_api.main:app", "--host", host, "--port",
                             str(settings.trace_port), "--no-access-log", "--log-level", "warning"),
                   settings.trace_url, f"{settings.trace_url}/healthz", account_env("trace")),
    ]
    for i in range(workers):
        port = settings.worker_metrics_port + i
        # /healthz answers 200 only while every intake is running and keeping up (streams/consumer.py).
        services.append(AppService(f"worker-{i}" if i else "worker", "worker", (py, "-m", "streams"),
                                   f"http://{host}:{port}/metrics", f"http://{host}:{port}/healthz",
                                   (("TRUYVET_WORKER_METRICS_PORT", str(port)), *account_env("worker"))))
    services.append(_dispatcher(settings))  # issue 6 (alerts)
    return services


def _dispatcher(settings: CommonSettings) -> AppService:
    """The alert dispatcher (webhooks); its metrics port is ``ALERTS_DISPATCHER_PORT``."""
    url = f"http://{settings.bind_host}:{settings.dispatcher_metrics_port}/metrics"
    return AppService("dispatcher", "dispatcher", (sys.executable, "-m", "streams.alerting.dispatcher"), url, url,
                      account_env("dispatcher"))


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URLs from settings
        return bool(response.status == 200)


def service_health(url: str) -> str:
    """``up`` when the health URL answers 200; else what it says (a worker's ``restoring``, ``stalled``,
    ``recovering``, ``failed``...), or ``down`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URLs from settings
            return "up" if response.status == 200 else "down"
    except urllib.error.HTTPError as exc:
        try:
            return str(json.loads(exc.read()).get("status") or "down")
        except (ValueError, AttributeError):
            return "down"
    except (OSError, ValueError):
        return "down"


class Stack:
    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        make_private_dir(settings.data_dir)
        self.kafka = KafkaNode(settings)
        self.clickhouse = ClickHouseNode(settings)
        self.procs = ProcessDir(settings.data_dir)

    def infra_up(self) -> None:
        """This installation's secrets made (the first time), Kafka and ClickHouse running with their
        accounts, topics and ACLs created, migrations applied."""
        ensure_installation_secrets(self.settings.data_dir)
        self.clickhouse.start()
        self.kafka.start()
        ensure_topics(self.settings)
        ensure_database(self.settings, wait_for_accounts=True).close()

    profile = "single"

    def service_env(self) -> dict[str, str]:
        """Environment every service process gets on top of ours (the profile's addresses)."""
        return {}

    def up(self, *, workers: int = 1, ingest_workers: int | None = None) -> None:
        """Start what is not running (a running process is left alone); ``ingest_workers`` unset keeps the
        ingest pool size asked for last (1 at first)."""
        self.infra_up()
        ingest_workers = ingest_pool.pool_size(self.procs, ingest_workers)
        ingest_pool.forget_dead(self.settings)
        services = app_services(self.settings, workers=workers, ingest_workers=ingest_workers)
        for service in services:
            env = {"PYTHONPATH": str(PROJECT_ROOT), **self.service_env(), **dict(service.env)}
            self.procs.start(service.name, service.argv, env=env, cwd=PROJECT_ROOT)
        for service in services:
            wait_until(lambda s=service: http_ok(self.health_url(s)), timeout=90, what=service.name)

    def health_url(self, service: AppService) -> str:
        """Where to ask this process: an ingest process on its own port (the shared one answers from any)."""
        if service.kind == "ingest":
            pid = self.procs.pid(service.name)
            own = ingest_pool.own_health_url(self.settings, pid) if pid else None
            if own is None and pid and ingest_pool.is_pool_process(pid):
                raise StackError(f"{service.name} has not opened its own port yet")
            return own or service.health_url
        return service.health_url

    def stop_services(self) -> list[str]:
        """Stop every service process (all of the ingest pool, up to 8 workers); return the names stopped."""
        stopped = [name for name in ingest_pool.running_names(self.procs) if self.procs.stop(name)]
        return stopped + [s.name for s in app_services(self.settings, workers=8, ingest_workers=0)
                          if self.procs.stop(s.name)]

    def down(self) -> list[str]:
        """Stop the services first (they flush to Kafka/ClickHouse), then Kafka and ClickHouse."""
        stopped = self.stop_services()
        if self.kafka.stop():
            stopped.append("kafka")
        if self.clickhouse.stop():
            stopped.append("clickhouse")
        return stopped

    def status(self) -> list[dict[str, str]]:
        """One row per component: name, kind, pid, address, health, version (docs/api.md, v2)."""
        return [*self.infra_status(), *self.service_status()]

    def service_status(self) -> list[dict[str, str]]:
        """One row per service process; every process of the ingest pool (ingest_pool.py) has its own."""
        rows = []
        size = ingest_pool.pool_size(self.procs)
        names = [ingest_name(i) for i in range(size)]
        names += [n for n in ingest_pool.running_names(self.procs) if n not in names]
        pool = [AppService(n, "ingest", (), self.settings.ingest_url, f"{self.settings.ingest_url}/healthz")
                for n in names]
        for service in [*pool, *app_services(self.settings, workers=8, ingest_workers=0)]:
            pid = self.procs.pid(service.name)
            if pid is None and service.name.startswith("worker-"):
                continue
            if service.kind == "ingest" and pid is None:
                health = "down"  # the shared port would answer for the others
            else:
                try:
                    health = service_health(self.health_url(service))
                except StackError:
                    health = "starting"
            rows.append({"name": service.name, "kind": service.kind, "pid": str(pid or "-"),
                         "address": service.address, "health": health, "version": ""})
        return rows

    def infra_status(self) -> list[dict[str, str]]:
        rows = []
        try:
            kafka_ok = self.kafka.ready()
        except Exception:  # noqa: BLE001 - status reports, it does not fail
            kafka_ok = False
        rows.append({"name": "kafka", "kind": "kafka", "pid": str(self.procs.pid("kafka") or "-"),
                     "address": self.settings.kafka_bootstrap, "health": "up" if kafka_ok else "down",
                     "version": f"Apache Kafka {self.kafka.jar_version() or '?'} (KRaft)"})
        try:
            ch_version = server_version(self.settings)
            ch_ok = True
        except Exception:  # noqa: BLE001
            ch_version, ch_ok = "?", False
        rows.append({"name": "clickhouse", "kind": "clickhouse", "pid": str(self.clickhouse.server_pid() or "-"),
                     "address": f"{self.settings.clickhouse_host}:{self.settings.clickhouse_port}",
                     "health": "up" if ch_ok else "down", "version": f"ClickHouse {ch_version}"})
        return rows
