"""A device cannot overwrite an existing person's details (issue 13, item 9), over HTTP.

The first card of a pseudonym stands; a device replaying that ID number with another name and address
gets its scan accepted (the visit is real data) but the stored details, residence ward included, stay;
the disagreeing card is listed for the health centers of the stored ward and of the card's ward. An ID
number in full-width digits is the same person (NFKC), digits of other scripts are refused.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from ingest.pseudonym import pseudonym
from truyvet.auth import Role
from truyvet.schema.databases import personal

WARD_STORED, WARD_CARD, WARD_OTHER = "01837", "01849", "01840"
WIDE = str.maketrans("0123456789|", "０１２３４５６７８９｜")


def _scan(venue: str, card: str) -> dict[str, str]:
    at = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    return {"scan_id": str(uuid.uuid4()), "scanned_at": at, "venue_id": venue, "cccd_qr": card}


def test_the_first_card_stands_and_a_conflicting_one_is_kept_for_the_ward(services, token, db,  # noqa: ANN001
                                                                          http: httpx.Client) -> None:
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Chợ", "category": "market_shop", "ward_code": WARD_STORED})
    venue = r.json()["venue_id"]
    number = "0019" + str(uuid.uuid4().int % 10**8).zfill(8)
    person = pseudonym(os.environ["TRUYVET_PSEUDONYM_KEY"].encode(), number)
    genuine = f"{number}||Hà Thị Thật|02031985|Nữ|Tổ 2, Phường Sông Cầu, Bắc Kạn|01012021"
    forged = f"{number}||Kẻ Giả Mạo|02031985|Nữ|Thôn 1, Xã Dương Quang, Bắc Kạn|01012021"
    first, second = token(Role.device), token(Role.device)
    for headers, card in ((first, genuine), (second, forged), (second, genuine.translate(WIDE))):
        r = http.post(f"{services.ingest_url}/v1/scans", headers=headers, json=_scan(venue, card))
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    r = http.post(f"{services.ingest_url}/v1/scans", headers=first,
                  json=_scan(venue, genuine.replace(number, number.translate(str.maketrans("0123456789",
                                                                                           "٠١٢٣٤٥٦٧٨٩")))))
    assert r.json()["rejected"][0]["error"] == "cccd_qr: ID number must be 12 digits"

    why = {"reason": "xác minh danh tính"}
    r = http.get(f"{services.trace_url}/v1/persons/{person}", headers=token(Role.epidemiologist), params=why)
    assert r.status_code == 200, r.text
    assert (r.json()["full_name"], r.json()["residence_ward_code"]) == ("Hà Thị Thật", WARD_STORED)
    details = personal(db.name, "person_details")
    assert db.execute(f"SELECT count() FROM {details} WHERE full_name = 'Kẻ Giả Mạo'")[0][0] == 0
    # The full-width card is the same person: one pseudonym for the name, not two.
    assert db.execute(f"SELECT uniqExact(person_id) FROM {details} WHERE full_name = 'Hà Thị Thật'")[0][0] == 1

    def listed(ward: str) -> list[dict[str, object]]:
        r = http.get(f"{services.trace_url}/v1/persons/conflicts", params=why,
                     headers=token(Role.health_center, ward))
        assert r.status_code == 200, r.text
        return [c for c in r.json()["conflicts"] if c["person_id"] == person]

    for ward in (WARD_STORED, WARD_CARD):
        (conflict,) = listed(ward)
        assert (conflict["full_name"], conflict["residence_ward_code"], conflict["stored_ward_code"]) == (
            "Kẻ Giả Mạo", WARD_CARD, WARD_STORED)
        assert conflict["reported_by"] == "test-device"
    assert listed(WARD_OTHER) == []
    r = http.get(f"{services.trace_url}/v1/persons/conflicts", headers=token(Role.health_center, WARD_STORED))
    assert r.status_code == 422, "a reason is required"
