"""Late data raises every alert it implies (docs/tracing.md, "Late data"): also when the late scan is the
case person's own, or a generation-1 contact's visit written after that contact was found, whether the
registration's trace found them or the worker's matcher did later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.alerting.webhooks import set_webhook
from tests.integration.alerts.receiver import Receiver, wait_for
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

pytestmark = pytest.mark.integration


def _alerted(receiver: Receiver, case_id: str) -> dict[str, int]:
    return {str(d.alert["person_id"]): int(d.alert["generation"]) for d in receiver.for_case(case_id)}


def test_late_visits_of_the_case_person_and_of_contacts_raise_their_alerts(profile, http) -> None:  # noqa: ANN001
    services, db, token = profile.services, profile.db, profile.token  # both profiles (issue 12)
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    ward = "01843"
    receiver = Receiver(_secret()).start()
    try:
        set_webhook(db, ward_code=ward, url=receiver.url, secret=receiver.secret)  # the profile's own store
        v1, v2, v3, v4, v5 = (_venue(http, services, registrar, ward) for _ in range(5))
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=10)
        case, f1, met_f1_later, late_f1, met_late_f1, met_case_late, met_late_f1_cascade = (
            _person() for _ in range(7))
        _post_scans(http, services, device, [
            _scan(v1, case, t0), _scan(v1, case, t0 + timedelta(minutes=30), "out"),
            _scan(v1, f1, t0 + timedelta(minutes=5)),
        ])
        wait_for(lambda: _visits_of(db, [case, f1]) == {case, f1}, timeout=60, what="visits written")
        case_id = _register(http, services, epi, case, now)
        wait_for(lambda: _alerted(receiver, case_id) == {f1: 1}, timeout=30, what="the registration's F1")

        # 1. An F1 found at registration: their visit at v2 uploaded late, and someone met them there.
        _post_scans(http, services, device, [
            _scan(v2, f1, t0 + timedelta(hours=2)), _scan(v2, met_f1_later, t0 + timedelta(hours=2, minutes=10))])
        wait_for(lambda: _alerted(receiver, case_id).get(met_f1_later) == 2, timeout=30,
                 what="the F2 of a registration F1's late visit")

        # 2. The case person's own late scan at v3, where someone was.
        _post_scans(http, services, device, [_scan(v3, met_case_late, t0 + timedelta(hours=4))])
        wait_for(lambda: _visits_of(db, [met_case_late]) == {met_case_late}, timeout=60, what="visit written")
        _post_scans(http, services, device, [_scan(v3, case, t0 + timedelta(hours=4, minutes=5))])
        wait_for(lambda: _alerted(receiver, case_id).get(met_case_late) == 1, timeout=30,
                 what="the F1 of the case person's late scan")

        # 3. A contact found late by the worker (late scan at v1), whose own visit at v4 is uploaded even
        #    later, with someone else there: that someone is an F2.
        _post_scans(http, services, device, [_scan(v1, late_f1, t0 + timedelta(minutes=10))])
        wait_for(lambda: _alerted(receiver, case_id).get(late_f1) == 1, timeout=30, what="the late F1")
        _post_scans(http, services, device, [
            _scan(v4, late_f1, t0 + timedelta(hours=6)), _scan(v4, met_late_f1, t0 + timedelta(hours=6, minutes=5))])
        wait_for(lambda: _alerted(receiver, case_id).get(met_late_f1) == 2, timeout=30,
                 what="the F2 of a late F1's later visit")

        # 4. The person met at the case's late scan (an F1 found by the worker) is traced too.
        _post_scans(http, services, device, [
            _scan(v5, met_case_late, t0 + timedelta(hours=7)),
            _scan(v5, met_late_f1_cascade, t0 + timedelta(hours=7, minutes=1))])
        wait_for(lambda: _alerted(receiver, case_id).get(met_late_f1_cascade) == 2, timeout=30,
                 what="the F2 of the F1 found through the case person's late scan")

        # Each exactly once, and the trace agrees.
        got = [str(d.alert["person_id"]) for d in receiver.for_case(case_id)]
        assert sorted(got) == sorted(set(got)), got
        r = http.get(f"{services.trace_url}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 2})
        assert r.status_code == 200, r.text
        traced = {c["person_id"]: c["generation"] for c in r.json()["contacts"]}
        assert traced == _alerted(receiver, case_id)
    finally:
        receiver.stop()


def test_a_late_contact_is_traced_from_its_earliest_exposure_even_when_a_later_one_comes_first(
        services, db, token, http) -> None:
    """Two late exposures of one person in one upload, the later one first: the person is traced from the
    earlier one, so whom they met in between is alerted (the fault test once lost these F2s)."""
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    ward = "01840"
    receiver = Receiver(_secret()).start()
    try:
        _webhook(ward, receiver)
        v1, v2 = _venue(http, services, registrar, ward), _venue(http, services, registrar, ward)
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(hours=8)
        case, contact, met_between = (_person() for _ in range(3))
        _post_scans(http, services, device, [
            _scan(v1, case, t0), _scan(v1, case, t0 + timedelta(hours=4), "out"),
            _scan(v2, contact, t0 + timedelta(hours=1)), _scan(v2, met_between, t0 + timedelta(hours=1, minutes=5)),
        ])
        wait_for(lambda: _visits_of(db, [case, contact, met_between]) == {case, contact, met_between}, timeout=60,
                 what="visits written")
        case_id = _register(http, services, epi, case, now)
        # One upload, the later exposure first: both notices reach the matcher in one message.
        _post_scans(http, services, device, [_scan(v1, contact, t0 + timedelta(hours=3)),
                                             _scan(v1, contact, t0 + timedelta(minutes=10))])
        wait_for(lambda: _alerted(receiver, case_id) == {contact: 1, met_between: 2}, timeout=30,
                 what="the contact (F1) and whom they met between their two exposures (F2)")
    finally:
        receiver.stop()
