"""The services of a test stack as real processes (ingest, trace, worker, dispatcher), for the single-node
session (tests/conftest.py) and the cluster profile (tests/cluster_fixtures.py) alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.processes import ProcessDir, wait_until
from truyvet.stack.services import app_services, http_ok


@dataclass
class RunningServices:
    settings: CommonSettings
    procs: ProcessDir
    env: dict[str, str]
    ingest_url: str
    trace_url: str
    worker_metrics_url: str

    def start_worker(self, name: str = "worker", *, extra_env: dict[str, str] | None = None) -> int:
        return self.start("worker", as_name=name, extra_env=extra_env)

    def start(self, service_name: str, *, as_name: str | None = None, extra_env: dict[str, str] | None = None) -> int:
        """Start one of the session's services again (after a test stopped or killed it)."""
        service = next(s for s in app_services(self.settings) if s.name == service_name)
        env = {**self.env, **dict(service.env), **(extra_env or {})}
        return self.procs.start(as_name or service_name, service.argv, env=env, cwd=PROJECT_ROOT)

    def health_url(self, service_name: str) -> str:
        return next(s.health_url for s in app_services(self.settings) if s.name == service_name)

    def log(self, name: str) -> str:
        return self.procs.log_file(name).read_text(errors="replace")


@contextmanager
def running_services(settings: CommonSettings, env: dict[str, str], procs: ProcessDir, *, label: str,
                     timeout: float) -> Iterator[RunningServices]:
    """Start every service of ``settings`` with ``env``, wait until each answers its health check (their
    logs printed when one does not), and stop them all afterwards."""
    running = RunningServices(settings, procs, env, settings.ingest_url, settings.trace_url,
                              f"http://{settings.bind_host}:{settings.worker_metrics_port}/metrics")
    try:  # stopped also when one never answers (they outlived a failed session and kept a core busy)
        for service in app_services(settings):
            procs.start(service.name, service.argv, env={**env, **dict(service.env)}, cwd=PROJECT_ROOT)
        try:
            for service in app_services(settings):
                wait_until(lambda s=service: http_ok(s.health_url), timeout=timeout, what=f"{label}{service.name}")
        except Exception:
            for name in ("ingest", "trace", "worker", "dispatcher"):
                print(f"--- {label}{name} log ---\n{running.log(name)[-3000:]}")
            raise
        yield running
    finally:
        for name in [p.stem for p in procs.run.glob("*.pid")]:
            procs.stop(name)
