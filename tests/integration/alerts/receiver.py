"""A real HTTP webhook receiver for the alert tests: checks signatures, records every delivery."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from streams.alerting.delivery import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from truyvet.stack.processes import free_port


@dataclass
class Delivery:
    alert: dict[str, object]
    idempotency_key: str
    signature_valid: bool
    received_at: float


@dataclass
class Receiver:
    """A ward health center's webhook endpoint on a free loopback port; :meth:`stop` takes it down."""

    secret: str
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                valid = verify(
                    owner.secret,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    self.headers.get(SIGNATURE_HEADER, ""),
                    body,
                )
                with owner._lock:
                    owner.deliveries.append(
                        Delivery(
                            orjson.loads(body),
                            self.headers.get(IDEMPOTENCY_HEADER, ""),
                            valid,
                            time.monotonic(),
                        )
                    )
                self.send_response(200 if valid else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 1024
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def for_case(self, case_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.alert.get("case_id") == case_id]


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)


def metric(url: str, name: str, labels: str = "") -> float:
    """Sum of a Prometheus sample (``labels``: a substring of the label set, e.g. 'source="late"')."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
        text = response.read().decode()
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M):
        if labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total
