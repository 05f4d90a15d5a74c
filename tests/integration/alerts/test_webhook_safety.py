"""Webhooks cannot be turned against the installation (issue 13, item 7), with real dispatchers.

- a 307/308 answer is not followed: the signed body never reaches where the receiver points;
- without ``ALERTS_WEBHOOK_ALLOW_PRIVATE`` a webhook to loopback is not delivered to, whether the URL holds
  the address or a name that resolves to it (checked after resolution, at delivery);
- ``truyvet webhook set`` refuses such URLs, never takes the secret as an argument, reads it from stdin
  or a file, and stores it encrypted.
"""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner, Result

from streams.alerting.cli import webhook
from streams.alerting.settings import get_settings
from streams.alerting.webhooks import SEALED, set_webhook, webhooks
from tests.integration.alerts.receiver import Receiver, wait_for
from tests.integration.alerts.test_dispatcher_budget import _alert, _send, own  # noqa: F401 - the fixture
from truyvet.events import Topics
from truyvet.stack.processes import free_port

pytestmark = pytest.mark.integration


class Redirector:
    """Answers every POST with a redirect to ``target`` and counts them."""

    def __init__(self, target: str, status: int) -> None:
        self.port, self.hits = free_port(), 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.hits += 1
                self.send_response(status)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _state(db, alert_id: str) -> tuple[str, int, str]:  # noqa: ANN001
    rows = db.execute("SELECT status, attempts, last_error FROM alerts FINAL WHERE alert_id = %(a)s",
                      {"a": alert_id})
    return (str(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else ("", 0, "")


def test_redirects_are_not_followed(own, db) -> None:  # noqa: ANN001, F811
    receiver = Receiver(uuid.uuid4().hex).start()
    hops = [Redirector(receiver.url, 307), Redirector(receiver.url, 308)]
    try:
        wards = [f"REDIR{uuid.uuid4().hex[:6]}" for _ in hops]
        for ward, hop in zip(wards, hops, strict=True):
            set_webhook(db, ward_code=ward, url=f"http://127.0.0.1:{hop.port}/alerts", secret=receiver.secret)
        own["start"]("redirects", ALERTS_WEBHOOK_ALLOW_PRIVATE="1")
        alerts = [_alert(w) for w in wards]
        _send(own["producer"], own["settings"].topic(Topics.ALERTS), alerts)
        for alert in alerts:
            wait_for(lambda a=alert: _state(db, a.alert_id)[1] >= 2, timeout=30, what="two attempts")
            status, _, error = _state(db, alert.alert_id)
            assert status == "retrying" and "redirects are not followed" in error, error
        assert all(hop.hits >= 2 for hop in hops)
        assert receiver.deliveries == [], "the signed body was carried to the redirect's target"
    finally:
        for hop in hops:
            hop.close()
        receiver.stop()


def test_loopback_targets_are_refused_at_delivery_after_resolution(own, db) -> None:  # noqa: ANN001, F811
    receiver = Receiver(uuid.uuid4().hex).start()
    try:
        hosts = {f"LIT{uuid.uuid4().hex[:6]}": f"http://127.0.0.1:{receiver.port}/alerts",
                 f"NAME{uuid.uuid4().hex[:6]}": f"http://localhost:{receiver.port}/alerts"}
        for ward, url in hosts.items():
            set_webhook(db, ward_code=ward, url=url, secret=receiver.secret)  # as stored before this check
        own["start"]("strict", ALERTS_WEBHOOK_ALLOW_PRIVATE="0")
        alerts = [_alert(w) for w in hosts]
        _send(own["producer"], own["settings"].topic(Topics.ALERTS), alerts)
        for alert in alerts:
            wait_for(lambda a=alert: _state(db, a.alert_id)[1] >= 2, timeout=30, what="two attempts")
            status, _, error = _state(db, alert.alert_id)
            assert status == "retrying" and ("not public" in error or "non-public" in error), error
        assert receiver.deliveries == []
    finally:
        receiver.stop()


def _webhook_cli(*args: str, stdin: str = "", **env: str) -> Result:
    """``truyvet webhook set ARGS`` run in this process (the real command, its own settings from ``env``)."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(webhook, ["set", *args], input=stdin, env=env)
    finally:
        get_settings.cache_clear()


def test_the_cli_refuses_private_urls_and_secrets_in_argv_and_stores_secrets_encrypted(db, tmp_path) -> None:  # noqa: ANN001
    strict = {"ALERTS_WEBHOOK_ALLOW_PRIVATE": "0"}
    secret = f"s-{uuid.uuid4().hex}"
    # Each kind of address is refused by the same check (tests/unit/alerts/test_targets.py); here the command.
    done = _webhook_cli("--ward", "01840", "http://localhost:8123/?query=x", stdin=secret, **strict)
    assert done.exit_code == 2 and "non-public" in done.output, done.output
    done = _webhook_cli("--ward", "01840", "http://127.0.0.1:1/hook", secret)
    assert done.exit_code == 2 and "unexpected extra argument" in done.output.lower(), done.output

    ward = "01843"
    done = _webhook_cli("--ward", ward, "http://127.0.0.1:1/from-stdin", stdin=secret + "\n")
    assert done.exit_code == 0, done.output
    stored = db.execute("SELECT secret FROM ward_webhooks FINAL WHERE ward_code = %(w)s", {"w": ward})[0][0]
    assert stored.startswith(SEALED) and secret not in stored
    assert webhooks(db)[ward].secret == secret

    path = tmp_path / "secret"
    path.write_text(secret[::-1])
    done = _webhook_cli("--ward", ward, "http://127.0.0.1:1/from-file", "--secret-file", str(path))
    assert done.exit_code == 0, done.output
    assert (webhooks(db)[ward].url, webhooks(db)[ward].secret) == ("http://127.0.0.1:1/from-file", secret[::-1])
