"""Alerts end to end on the real stack: case -> Kafka -> dispatcher -> a real HTTP receiver per ward.

Also late scans: a scan posted after the case that makes someone a contact is alerted by the
stream worker's matcher without re-running the trace; one that makes nobody a contact, or a
repeat, raises nothing new.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from ingest.persons import save_details
from streams.alerting.cli import webhook
from tests.integration.alerts.receiver import Receiver, metric, wait_for
from truyvet.alerts import alert_id
from truyvet.auth import Role

pytestmark = pytest.mark.integration

WARD_A, WARD_B, WARD_C, WARD_D, WARD_E = "01834", "01837", "01840", "01843", "01846"


def _person() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


def _scan(venue: str, person: str, at: datetime, direction: str = "in", scan_id: str | None = None) -> dict:
    return {
        "scan_id": scan_id or str(uuid.uuid4()),
        "scanned_at": at.isoformat(),
        "direction": direction,
        "venue_id": venue,
        "person_id": person,
    }


def _webhook(ward: str, receiver: Receiver) -> None:
    # The secret on stdin: never an argument (issue 13).
    result = CliRunner().invoke(webhook, ["set", "--ward", ward, receiver.url], input=receiver.secret)
    assert result.exit_code == 0, result.output


def _venue(http: httpx.Client, services, headers, ward: str) -> str:
    r = http.post(
        f"{services.ingest_url}/v1/venues",
        headers=headers,
        json={"name": f"Quán {ward}", "category": "food_drink", "ward_code": ward},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["venue_id"])


def _post_scans(http: httpx.Client, services, headers, scans: list[dict]) -> None:
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=headers, json=scans)
    assert r.status_code == 202 and not r.json()["rejected"], r.text


def _visits_of(db, persons: list[str]) -> set[str]:
    rows = db.execute("SELECT DISTINCT person_id FROM visits WHERE person_id IN %(p)s", {"p": tuple(persons)})
    return {str(r[0]) for r in rows}


def _register(http: httpx.Client, services, headers, person: str, now: datetime) -> str:
    r = http.post(
        f"{services.trace_url}/v1/cases",
        headers=headers,
        json={
            "person_id": person,
            "infectious_from": (now - timedelta(days=2)).isoformat(),
            "infectious_to": now.isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["case_id"])


def _alerts(http: httpx.Client, services, headers, **params: str) -> list[dict]:
    r = http.get(f"{services.trace_url}/v1/alerts", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["alerts"])


def _all_delivered(http: httpx.Client, services, headers, case_id: str, persons: set[str]) -> bool:
    """``GET /v1/alerts`` lists exactly ``persons`` for the case, all delivered (recorded after the 2xx)."""
    listed = _alerts(http, services, headers, case_id=case_id)
    return {a["person_id"] for a in listed} == persons and all(
        a["delivery"]["status"] == "delivered" for a in listed
    )


def _secret() -> str:
    return secrets.token_hex(16)


def test_contacts_in_three_wards_get_one_signed_alert_each_at_their_ward(services, db, token, http) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    receivers = {w: Receiver(_secret()).start() for w in (WARD_A, WARD_B, WARD_C)}
    try:
        for ward, receiver in receivers.items():
            _webhook(ward, receiver)
        va, vb, vc = (_venue(http, services, registrar, w) for w in (WARD_A, WARD_B, WARD_C))
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=8)
        case, a1, a2, b1, c1, resident, f2, far = (_person() for _ in range(8))
        # `resident` meets the case in ward A but lives in ward C (person_details): alerted to C.
        save_details(db, [(resident, "", "", "", "", WARD_C, "test", now)])
        _post_scans(
            http,
            services,
            device,
            [
                _scan(va, case, t0),
                _scan(va, case, t0 + timedelta(minutes=30), "out"),
                _scan(vb, case, t0 + timedelta(hours=1)),
                _scan(vb, case, t0 + timedelta(hours=1, minutes=20), "out"),
                _scan(vc, case, t0 + timedelta(hours=3)),
                _scan(vc, case, t0 + timedelta(hours=3, minutes=10), "out"),
                _scan(va, a1, t0 + timedelta(minutes=5)),
                _scan(va, a2, t0 - timedelta(minutes=40)),
                _scan(va, resident, t0 + timedelta(minutes=20)),
                _scan(vb, b1, t0 + timedelta(hours=1, minutes=50)),  # within W after the case left
                _scan(vc, c1, t0 + timedelta(hours=2, minutes=30)),
                # a1 (F1) goes on to venue B, where f2 meets a1 but not the case: generation 2, ward B.
                _scan(vb, a1, t0 + timedelta(hours=5)),
                _scan(vb, f2, t0 + timedelta(hours=5, minutes=10)),
                _scan(vc, far, t0 + timedelta(hours=6)),  # more than W after the case left venue C
            ],
        )
        persons = [case, a1, a2, b1, c1, resident, f2, far]
        wait_for(lambda: _visits_of(db, persons) == set(persons), timeout=60, what="visits written")
        case_id = _register(http, services, epi, case, now)

        expected = {a1: WARD_A, a2: WARD_A, resident: WARD_C, b1: WARD_B, c1: WARD_C, f2: WARD_B}
        wait_for(
            lambda: sum(len(r.for_case(case_id)) for r in receivers.values()) >= len(expected),
            timeout=60,
            what="every alert delivered",
        )
        # Delivered state is recorded after the receiver answered: once all are delivered, no more come.
        wait_for(
            lambda: _all_delivered(http, services, epi, case_id, set(expected)),
            timeout=30,
            what="delivery state recorded",
        )
        got = {w: r.for_case(case_id) for w, r in receivers.items()}
        for ward, deliveries in got.items():
            assert sorted(d.alert["person_id"] for d in deliveries) == sorted(
                p for p, w in expected.items() if w == ward
            )
            assert all(d.signature_valid for d in deliveries)
            assert all(
                d.idempotency_key == d.alert["alert_id"] == alert_id(case_id, d.alert["person_id"])
                for d in deliveries
            )
            assert all(d.alert["ward_code"] == ward for d in deliveries)
        generations = {d.alert["person_id"]: d.alert["generation"] for ds in got.values() for d in ds}
        assert generations == {a1: 1, a2: 1, resident: 1, b1: 1, c1: 1, f2: 2}

        listed = _alerts(http, services, epi, case_id=case_id)
        assert sorted(a["person_id"] for a in listed) == sorted(expected)
        assert all(a["delivery"] == {"status": "delivered", "attempts": 1} for a in listed)
        assert [a["created_at"] for a in listed] == sorted((a["created_at"] for a in listed), reverse=True)
        # A health center sees only its own ward's alerts, and may not ask for another ward's.
        hc = token(Role.health_center, WARD_B)
        assert sorted(a["person_id"] for a in _alerts(http, services, hc, case_id=case_id)) == sorted(
            [b1, f2]
        )
        r = http.get(f"{services.trace_url}/v1/alerts", headers=hc, params={"ward_code": WARD_A})
        assert r.status_code == 403
        assert http.get(f"{services.trace_url}/v1/alerts").status_code == 401
    finally:
        for r in receivers.values():
            r.stop()


def test_receiver_down_for_20s_then_back_gets_every_alert_once(services, db, token, http) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    receiver = Receiver(_secret())  # registered but not listening yet: the ward's server is down
    _webhook(WARD_D, receiver)
    venue = _venue(http, services, registrar, WARD_D)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=4)
    case, *contacts = (_person() for _ in range(6))
    _post_scans(
        http,
        services,
        device,
        [_scan(venue, case, t0)]
        + [_scan(venue, p, t0 + timedelta(minutes=i)) for i, p in enumerate(contacts)],
    )
    wait_for(
        lambda: _visits_of(db, [case, *contacts]) == {case, *contacts}, timeout=60, what="visits written"
    )
    dispatcher = f"http://127.0.0.1:{os.environ['ALERTS_DISPATCHER_PORT']}/metrics"
    retried_before = metric(dispatcher, "truyvet_alerts_delivery_retries_total")
    down_since = time.monotonic()
    case_id = _register(http, services, epi, case, now)

    def failing_for_20s() -> bool:
        listed = _alerts(http, services, epi, case_id=case_id)
        return (
            time.monotonic() - down_since >= 20
            and len(listed) == len(contacts)
            and all(a["delivery"]["attempts"] >= 2 for a in listed)
        )

    wait_for(failing_for_20s, timeout=90, what="alerts retried while the receiver is down", every=1)
    assert metric(dispatcher, "truyvet_alerts_delivery_retries_total") > retried_before
    assert not receiver.for_case(case_id)
    receiver.start()
    try:
        wait_for(
            lambda: _all_delivered(http, services, epi, case_id, set(contacts)),
            timeout=60,
            what="all delivered after the receiver came back",
        )
        deliveries = receiver.for_case(case_id)
        assert Counter(d.idempotency_key for d in deliveries) == Counter(
            {alert_id(case_id, p): 1 for p in contacts}
        )
        assert all(d.signature_valid for d in deliveries)
    finally:
        receiver.stop()


def test_late_scans_alert_once_by_themselves(services, db, token, http) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    receiver = Receiver(_secret()).start()
    try:
        _webhook(WARD_E, receiver)
        venue = _venue(http, services, registrar, WARD_E)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=4)
        case, late, nobody, sentinel = (_person() for _ in range(4))
        _post_scans(
            http,
            services,
            device,
            [_scan(venue, case, t0), _scan(venue, case, t0 + timedelta(minutes=30), "out")],
        )
        wait_for(lambda: _visits_of(db, [case]) == {case}, timeout=60, what="case visit written")
        case_id = _register(http, services, epi, case, now)
        assert _alerts(http, services, epi, case_id=case_id) == []
        worker = services.worker_metrics_url
        late_before = metric(worker, "truyvet_alerts_raised_total", 'source="late"')

        # 1. A late scan that makes someone a contact: alerted without anyone re-running the trace.
        late_scan = _scan(venue, late, t0 + timedelta(minutes=10))
        _post_scans(http, services, device, [late_scan])
        wait_for(lambda: receiver.for_case(case_id), timeout=10, what="late contact alerted")
        (first,) = receiver.for_case(case_id)
        assert first.alert["person_id"] == late and first.alert["generation"] == 1 and first.signature_valid

        # 2. A late scan that makes nobody a contact (beyond W), and the late scan repeated: the same
        # scan_id again and a new scan 2 minutes later (a near-duplicate).
        _post_scans(
            http,
            services,
            device,
            [
                _scan(venue, nobody, t0 + timedelta(hours=3)),
                late_scan,
                _scan(venue, late, t0 + timedelta(minutes=12)),
            ],
        )
        wait_for(lambda: _visits_of(db, [nobody]) == {nobody}, timeout=30, what="no-contact visit written")
        # 3. A sentinel contact at the same venue, posted after those were processed: its alert comes
        # through the same venue-keyed partition after anything the scans above could have raised.
        _post_scans(http, services, device, [_scan(venue, sentinel, t0 + timedelta(minutes=20))])
        wait_for(lambda: len(receiver.for_case(case_id)) >= 2, timeout=10, what="sentinel alerted")
        wait_for(
            lambda: _all_delivered(http, services, epi, case_id, {late, sentinel}),
            timeout=30,
            what="delivery recorded",
        )

        assert sorted(d.alert["person_id"] for d in receiver.for_case(case_id)) == sorted([late, sentinel])
        assert sorted(a["person_id"] for a in _alerts(http, services, epi, case_id=case_id)) == sorted(
            [late, sentinel]
        )
        # The matcher itself raised exactly two (no duplicate left for the dispatcher to drop).
        assert metric(worker, "truyvet_alerts_raised_total", 'source="late"') - late_before == 2
    finally:
        receiver.stop()


def test_a_late_scan_that_makes_a_new_f1_also_alerts_that_persons_contacts(services, db, token, http) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    ward = "01849"
    receiver = Receiver(_secret()).start()
    try:
        _webhook(ward, receiver)
        v1, v2 = _venue(http, services, registrar, ward), _venue(http, services, registrar, ward)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=5)
        case, late, met_late = (_person() for _ in range(3))
        # Before the case: `late` and `met_late` meet at v2 (nobody is a contact of anyone yet).
        _post_scans(
            http,
            services,
            device,
            [
                _scan(v1, case, t0),
                _scan(v1, case, t0 + timedelta(minutes=30), "out"),
                _scan(v2, late, t0 + timedelta(hours=2)),
                _scan(v2, met_late, t0 + timedelta(hours=2, minutes=5)),
            ],
        )
        wait_for(
            lambda: _visits_of(db, [case, late, met_late]) == {case, late, met_late},
            timeout=60,
            what="visits written",
        )
        case_id = _register(http, services, epi, case, now)
        assert _alerts(http, services, epi, case_id=case_id) == []
        # Hours late: `late` had been at v1 with the case, so `late` is F1 and `met_late` F2 (via late).
        _post_scans(http, services, device, [_scan(v1, late, t0 + timedelta(minutes=10))])
        wait_for(lambda: len(receiver.for_case(case_id)) >= 2, timeout=10, what="F1 and F2 alerted")
        got = {d.alert["person_id"]: d.alert["generation"] for d in receiver.for_case(case_id)}
        assert got == {late: 1, met_late: 2}
    finally:
        receiver.stop()
