"""``python -m streams``: run one stream worker (several may run; they share the partitions)."""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app

from streams.config import get_settings
from streams.worker import Worker, create_app, ensure_state_topics
from truyvet.redact import install_log_scrubber
from truyvet.stack.kafka import ensure_topics

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def serve_health(worker: Worker, host: str, port: int) -> None:
    """``/metrics`` (Prometheus) and ``/healthz`` (JSON; 200 only when every intake is ok) in a thread,
    so they answer even while the event loop is busy or stuck (which the commit age then shows)."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            health = worker.health()
            status = "200 OK" if health["status"] == "ok" else "503 Service Unavailable"
            body = json.dumps(health).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()


def main() -> None:
    install_log_scrubber()  # no ID number or card text in any log record of the worker (issue 13)
    settings = get_settings()
    ensure_topics(settings)
    ensure_state_topics(settings)
    (settings.data_dir / "streams").mkdir(parents=True, exist_ok=True)  # faust's datadir lives under it
    app, worker = create_app(settings)
    serve_health(worker, settings.bind_host, settings.worker_metrics_port)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    # The worker allocates a few tuples and dicts per scan and holds every person's state: with
    # CPython's default thresholds (700, 10, 10) the cyclic collector ran often enough to show as
    # ~15% of the worker's GIL time (py-spy, on the allocation sites). Objects made at start-up are
    # frozen out of it and it runs less often; reference counting frees nearly everything anyway.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    app.main()


if __name__ == "__main__":
    main()
