"""The worker restarted with live cases and open late-scan windows (issue 16): gracefully and with kill -9.

Each of the worker's stores must come back with the worker and be used at once:
- ``person-scans``: a visit opened before the restart is closed by its ``out`` scan after it (without the
  state it would be an orphan ``out`` visit with another id);
- ``exposure-windows``: a late scan after the restart that makes someone a contact is alerted;
- ``alerted``: a second late visit of a contact already alerted by the worker raises nothing new.
The time from the restart to ``/healthz`` answering 200 is printed (measured, not asserted).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.alerts.receiver import Receiver, metric, wait_for
from tests.integration.alerts.test_alert_delivery import (
    _person,
    _post_scans,
    _register,
    _scan,
    _secret,
    _venue,
    _visits_of,
    _webhook,
)
from truyvet.auth import Role
from truyvet.stack.processes import alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# One ward per variant: a receiver stopped at the end of one test keeps serving the dispatcher's open
# keep-alive connection, and the dispatcher caches a ward's webhook for a moment.
WARDS = {"graceful": "01852", "kill-9": "01855"}


def _healthz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            body = response.read()
            return response.status, json.loads(body) if body.startswith(b"{") else {}
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def _restart(services, how: str, name: str = "worker") -> float:
    """Stop one of the session's services (SIGTERM and wait, or kill -9 of its process group), start it
    again, and return the seconds until its health URL answers 200."""
    pid = services.procs.pid(name)
    assert pid is not None, f"the session's {name} is not running"
    if how == "kill-9":
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), timeout=10, what=f"{name} gone")
        services.procs.pid_file(name).unlink(missing_ok=True)
    else:
        assert services.procs.stop(name)
    started = time.monotonic()
    services.start(name)
    health = services.health_url(name)
    wait_for(lambda: _healthz(health)[0] == 200, timeout=120, what=f"{name} healthy again")
    return time.monotonic() - started


def _live_visits(db, person: str) -> list[tuple]:
    rows = db.execute(
        "SELECT visit_id, venue_id, toUnixTimestamp(t_in), toUnixTimestamp(t_out), deleted FROM visits FINAL "
        "WHERE person_id = %(p)s", {"p": person})
    return sorted(tuple(r[:4]) for r in rows if not r[4])


@pytest.mark.parametrize("how", ["graceful", "kill-9"])
def test_worker_restart_keeps_person_state_windows_and_alert_memory(services, db, token, http, how) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    receiver = Receiver(_secret()).start()
    ward = WARDS[how]
    try:
        _webhook(ward, receiver)
        v1, v2 = _venue(http, services, registrar, ward), _venue(http, services, registrar, ward)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=6)
        case, early, late, later, open_visit = (_person() for _ in range(5))
        _post_scans(http, services, device, [
            _scan(v1, case, t0), _scan(v1, case, t0 + timedelta(minutes=30), "out"),
            _scan(v1, early, t0 + timedelta(minutes=5)),
            _scan(v2, open_visit, t0 + timedelta(hours=3)),  # its `out` comes after the restart
        ])
        wait_for(lambda: _visits_of(db, [case, early, open_visit]) == {case, early, open_visit}, timeout=60,
                 what="visits written")
        case_id = _register(http, services, epi, case, now)
        wait_for(lambda: {d.alert["person_id"] for d in receiver.for_case(case_id)} == {early}, timeout=30,
                 what="the registration's alert")
        # A late scan before the restart: raised by the worker's matcher, remembered in `alerted`.
        _post_scans(http, services, device, [_scan(v1, late, t0 + timedelta(minutes=10))])
        wait_for(lambda: late in {d.alert["person_id"] for d in receiver.for_case(case_id)}, timeout=30,
                 what="the late scan's alert")

        seconds = _restart(services, how)
        print(f"\nworker restart ({how}) with live cases: healthy again after {seconds:.1f} s")

        keys = metric(services.worker_metrics_url, "truyvet_streams_state_keys", 'store="exposure-windows"')
        assert keys >= 1, "exposure windows were not restored"
        # person-scans: the open visit is closed by its out scan, as one visit.
        _post_scans(http, services, device, [_scan(v2, open_visit, t0 + timedelta(hours=3, minutes=20), "out")])
        closed = (int((t0 + timedelta(hours=3)).timestamp()), int((t0 + timedelta(hours=3, minutes=20)).timestamp()))
        wait_for(lambda: [v[2:] for v in _live_visits(db, open_visit)] == [closed], timeout=60,
                 what="the visit opened before the restart closed by its out scan after it")
        # exposure-windows: a new late contact is alerted.
        _post_scans(http, services, device, [_scan(v1, later, t0 + timedelta(minutes=15))])
        wait_for(lambda: later in {d.alert["person_id"] for d in receiver.for_case(case_id)}, timeout=30,
                 what="a late scan after the restart alerted")
        # alerted: `late` meets the case again (a second visit): suppressed by the worker, not re-raised.
        _post_scans(http, services, device, [_scan(v1, late, t0 + timedelta(minutes=25))])
        wait_for(lambda: metric(services.worker_metrics_url, "truyvet_alerts_duplicates_suppressed_total") >= 1,
                 timeout=30, what="the repeat match suppressed by the restored alert memory")
        by_person: dict[str, int] = {}
        for d in receiver.for_case(case_id):
            by_person[str(d.alert["person_id"])] = by_person.get(str(d.alert["person_id"]), 0) + 1
        assert by_person == {early: 1, late: 1, later: 1}
    finally:
        receiver.stop()


def test_ingest_trace_and_dispatcher_killed_with_a_live_case_come_back_and_alert(services, db, token, http) -> None:
    """kill -9 of ingest, trace API and dispatcher while a case is live: each is healthy again, a late scan
    posted after raises its alert, and the trace answers as before (they keep no state of their own)."""
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    receiver = Receiver(_secret()).start()
    ward = "01846"
    try:
        _webhook(ward, receiver)
        venue = _venue(http, services, registrar, ward)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=4)
        case, early, late = (_person() for _ in range(3))
        _post_scans(http, services, device, [_scan(venue, case, t0), _scan(venue, early, t0 + timedelta(minutes=5))])
        wait_for(lambda: _visits_of(db, [case, early]) == {case, early}, timeout=60, what="visits written")
        case_id = _register(http, services, epi, case, now)
        wait_for(lambda: {d.alert["person_id"] for d in receiver.for_case(case_id)} == {early}, timeout=30,
                 what="the registration's alert")
        for name in ("ingest", "trace", "dispatcher"):
            seconds = _restart(services, "kill-9", name)
            print(f"\n{name} after kill -9 with a live case: healthy again after {seconds:.1f} s")
        _post_scans(http, services, device, [_scan(venue, late, t0 + timedelta(minutes=20))])
        wait_for(lambda: late in {d.alert["person_id"] for d in receiver.for_case(case_id)}, timeout=30,
                 what="the late scan after the restarts alerted")
        r = http.get(f"{services.trace_url}/v1/cases/{case_id}/contacts", headers=epi)
        assert r.status_code == 200, r.text
        assert {c["person_id"] for c in r.json()["contacts"]} == {early, late}
        assert sorted(str(d.alert["person_id"]) for d in receiver.for_case(case_id)) == sorted([early, late])
    finally:
        receiver.stop()
