"""Alerts never stall (docs/api.md, "Follow-up and people"): a ward with no webhook, or with its webhook down,
still gets every alert, listed as failed once the retries are spent (and on its follow-up list from the
start); ``truyvet alerts resend`` delivers them again with the same alert_id.

Runs its own dispatcher (its own topics, a budget of 2 attempts) against this run's database; the listing
is the session's trace API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from streams.alerting.resend import alerts as alerts_command
from streams.alerting.webhooks import set_webhook
from tests.integration.alerts.receiver import Receiver, wait_for
from tests.integration.alerts.test_dispatcher_budget import _alert, _send, _states, own  # noqa: F401 - fixture
from truyvet.auth import Role
from truyvet.events import Topics
from truyvet.stack.processes import free_port

pytestmark = pytest.mark.integration


def test_undelivered_alerts_are_listed_and_resent_with_the_same_id(own, db, services, token, http) -> None:  # noqa: F811
    started = datetime.now(UTC).replace(microsecond=0)
    silent, down = f"NOHOOK{uuid.uuid4().hex[:6]}", f"DOWN{uuid.uuid4().hex[:6]}"
    set_webhook(db, ward_code=down, url=f"http://127.0.0.1:{free_port()}/down", secret="d" * 20)
    own["start"]("resend", ALERTS_MAX_ATTEMPTS="2")  # type: ignore[operator]
    quiet, failing = [_alert(silent) for _ in range(2)], [_alert(down)]
    _send(own["producer"], own["settings"].topic(Topics.ALERTS), [*quiet, *failing])  # type: ignore[arg-type, attr-defined]
    ids = [a.alert_id for a in [*quiet, *failing]]
    wait_for(lambda: {s for s, _ in _states(db, ids).values()} == {"dead_lettered"} and len(_states(db, ids)) == 3,
             timeout=60, what="retries spent")

    # Listed for the ward as failed, and on its follow-up list as new.
    health = token(Role.health_center, silent)
    r = http.get(f"{services.trace_url}/v1/alerts", headers=health)
    assert {(a["alert_id"], a["delivery"]["status"]) for a in r.json()["alerts"]} == {
        (a.alert_id, "failed") for a in quiet}
    r = http.get(f"{services.trace_url}/v1/follow-ups", headers=health)
    assert {(f["person_id"], f["status"]) for f in r.json()["follow_ups"]} == {(a.person_id, "new") for a in quiet}

    receiver = Receiver(uuid.uuid4().hex).start()
    try:
        # Still no webhook: resend says so and changes nothing.
        result = CliRunner().invoke(alerts_command, ["resend", "--ward", silent])
        assert result.exit_code == 1 and "still failed 2" in result.output, result.output
        assert receiver.deliveries == []

        # The ward's receiver is set up: its alerts (only those) arrive, signed, with their own ids.
        set_webhook(db, ward_code=silent, url=receiver.url, secret=receiver.secret)
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        result = CliRunner().invoke(alerts_command, ["resend", "--ward", silent, "--since", future])
        assert result.exit_code == 0 and "delivered 0" in result.output, result.output
        result = CliRunner().invoke(alerts_command, ["resend", "--ward", silent])
        assert result.exit_code == 0 and "delivered 2, still failed 0" in result.output, result.output
        assert sorted((d.alert["alert_id"], d.idempotency_key, d.signature_valid) for d in receiver.deliveries) == \
            sorted((a.alert_id, a.alert_id, True) for a in quiet)
        states = _states(db, ids)
        # 2 attempts of the dispatcher, then 2 resends
        assert {a: states[a] for a in (x.alert_id for x in quiet)} == {a.alert_id: ("delivered", 4) for a in quiet}
        assert states[failing[0].alert_id] == ("dead_lettered", 2)
        r = http.get(f"{services.trace_url}/v1/alerts", headers=health)
        assert {a["delivery"]["status"] for a in r.json()["alerts"]} == {"delivered"}

        # The other ward's webhook comes back: a resend of every ward (since this test began: earlier tests'
        # wards have no webhook) delivers what is left, nothing twice.
        set_webhook(db, ward_code=down, url=receiver.url, secret=receiver.secret)
        result = CliRunner().invoke(alerts_command, ["resend", "--since", started.isoformat()])
        assert result.exit_code == 0, result.output
        assert sorted(d.alert["alert_id"] for d in receiver.deliveries) == sorted(ids)
        assert {s for s, _ in _states(db, ids).values()} == {"delivered"}
    finally:
        receiver.stop()
