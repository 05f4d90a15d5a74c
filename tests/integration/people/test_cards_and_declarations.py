"""Printed personal cards and health declarations end to end (issue 15), on the real ingest, Kafka, worker,
dispatcher, ClickHouse and trace API.

Cards: issued ward-scoped, the printed PNG decodes (zbarimg) to the signed payload; a scan carrying it is
a visit of the card's person through HTTP and straight through Kafka; an edited or forged card is refused
with the reason at the HTTP door and dead-lettered with the reason on the Kafka path; the card's name is
in the restricted store, readable by the person's ward only.

Declarations: stored pseudonymously; one with symptoms raises a ``declaration`` alert delivered to the
ward's webhook (signed) and listed by ``GET /v1/alerts``; the per-ward, per-day report counts them.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from streams.alerting.cli import webhook
from tests.integration.alerts.receiver import Receiver, wait_for
from tests.integration.topics import records_until
from truyvet.auth import Role
from truyvet.cli import cli
from truyvet.kafka_clients import client_kwargs

pytestmark = pytest.mark.integration
CCCD = "001099012345||Nguyễn Văn Khai|01011990|Nam|Tổ 5, {ward}, Thành phố Bắc Kạn, Bắc Kạn|01012021"


@pytest.fixture(scope="module")
def wards(services, tmp_path_factory) -> tuple[str, str, str]:
    # ward b is one of the session's units, so the CCCD address below names a ward ingest already knows
    a, b = f"PA{secrets.token_hex(3)}", "01846"
    name_a = f"Phường Thẻ {secrets.token_hex(2)}"
    units = tmp_path_factory.mktemp("people") / "units.csv"
    units.write_text(f"code,name,level,parent_code\n{a},{name_a},ward,058\n", encoding="utf-8")
    assert CliRunner().invoke(cli, ["units", "load", str(units)]).exit_code == 0
    return a, b, name_a


@pytest.fixture(scope="module")
def venue(services, token, wards) -> str:
    with httpx.Client(timeout=30) as http:
        r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                      json={"name": "Nhà văn hoá tổ 5", "category": "meeting", "ward_code": wards[0]})
    assert r.status_code == 201, r.text
    return str(r.json()["venue_id"])


def _edit(payload: str, person: str) -> str:
    version, kid, body, sig = payload.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["p"] = person
    return ".".join((version, kid, base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("="), sig))


def _visits(db, person: str) -> int:
    return int(db.execute("SELECT count() FROM visits FINAL WHERE person_id = %(p)s AND deleted = 0",
                          {"p": person})[0][0])


def test_cards_are_ward_scoped_printable_and_accepted_at_both_doors(services, token, db, http, wards, venue,
                                                                    tmp_path: Path, artifacts: Path) -> None:
    a, b, ward_name = wards
    health_a = token(Role.health_center, a)
    r = http.post(f"{services.ingest_url}/v1/persons/cards", headers=health_a,
                  json={"residence_ward_code": a, "full_name": "Bà Lường Thị Hoa", "phone": "0912 345 678"})
    assert r.status_code == 201, r.text
    card = r.json()
    person, payload = card["person_id"], card["card_payload"]
    assert set(card) == {"person_id", "card_payload"} and payload.startswith("TP1.")
    # another ward's health center may neither issue for nor print this ward's cards
    r = http.post(f"{services.ingest_url}/v1/persons/cards", headers=token(Role.health_center, b),
                  json={"residence_ward_code": a})
    assert r.status_code == 403
    assert http.get(f"{services.ingest_url}/v1/persons/cards/{person}.png",
                    headers=token(Role.health_center, b)).status_code == 403
    assert http.post(f"{services.ingest_url}/v1/persons/cards", headers=token(Role.device),
                     json={"residence_ward_code": a}).status_code == 403
    # the printable card decodes to its payload
    r = http.get(f"{services.ingest_url}/v1/persons/cards/{person}.png", headers=token(Role.registrar))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    png = artifacts / "personal-card.png"
    png.write_bytes(r.content)
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True)
    assert decoded.stdout.strip() == payload
    # the name is in the restricted store: the person's ward reads it (audited), another ward does not
    r = http.get(f"{services.trace_url}/v1/persons/{person}", headers=health_a, params={"reason": "gọi điện"})
    assert r.status_code == 200 and r.json()["full_name"] == "Bà Lường Thị Hoa", r.text
    assert r.json()["residence_ward_code"] == a
    assert http.get(f"{services.trace_url}/v1/persons/{person}", headers=token(Role.health_center, b),
                    params={"reason": "gọi điện"}).status_code == 403
    assert db.execute(f"SELECT count() FROM {db.name}_audit.audit_log WHERE action = 'person.read' "
                      "AND params LIKE %(p)s", {"p": f"%{person}%card.png%"})[0][0] == 1

    # HTTP door: the card is accepted, an edited one refused with the reason
    device = token(Role.device)
    at = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0).isoformat()
    good = {"scan_id": str(uuid.uuid4()), "scanned_at": at, "venue_id": venue, "person_qr": payload}
    edited = {**good, "scan_id": str(uuid.uuid4()), "person_qr": _edit(payload, "someone-else")}
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=[good, edited])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1 and [x["index"] for x in body["rejected"]] == [1]
    assert "signature does not match" in body["rejected"][0]["error"]
    wait_for(lambda: _visits(db, person) >= 1, timeout=60, what="the card's HTTP scan as a visit")

    # Kafka door: the same card produced straight to the topic (later, so a second visit), a forged one
    settings = services.settings
    later = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0).isoformat()
    marker = secrets.token_hex(4)
    kafka_good = {"scan_id": str(uuid.uuid4()), "scanned_at": later, "venue_id": venue, "person_qr": payload}
    forged = {"scan_id": str(uuid.uuid4()), "scanned_at": later, "venue_id": venue, "note": marker,
              "person_qr": _edit(payload, f"forged{marker}")}
    producer = KafkaProducer(**client_kwargs(settings.as_account(kafka="device")), acks="all")
    try:
        for record in (kafka_good, forged):
            producer.send(settings.topic("scans"), orjson.dumps(record))
        producer.flush(timeout=30)
    finally:
        producer.close()
    wait_for(lambda: _visits(db, person) >= 2, timeout=60, what="the card's Kafka scan as a visit")
    assert _visits(db, f"forged{marker}") == 0
    letter = _dead_letter(settings, marker)
    assert "person_qr: signature does not match" in str(letter["reason"])


def _dead_letter(settings, marker: str) -> dict[str, object]:
    def mine(seen: list) -> list[dict[str, object]]:  # noqa: ANN001 - kafka-python's records
        return [letter for rec in seen if marker in str((letter := orjson.loads(rec.value))["raw"])]

    return mine(records_until(settings, settings.topic("scans-dlq"), lambda seen: bool(mine(seen)),
                              what="the forged card's dead letter"))[0]


def test_declarations_raise_ward_alerts_and_are_reported(services, token, db, http, wards, venue) -> None:
    a, b, ward_name = wards
    receiver = Receiver(secrets.token_hex(16)).start()
    try:
        assert CliRunner().invoke(webhook, ["set", "--ward", a, receiver.url], input=receiver.secret).exit_code == 0
        card = http.post(f"{services.ingest_url}/v1/persons/cards", headers=token(Role.registrar),
                         json={"residence_ward_code": a}).json()
        device = token(Role.device)
        now = datetime.now(UTC).replace(microsecond=0)

        def declare(**body: object) -> httpx.Response:
            doc = {"declaration_id": str(uuid.uuid4()), "declared_at": now.isoformat(), "contact_with_case": False,
                   **body}
            return http.post(f"{services.ingest_url}/v1/declarations", headers=device, json=doc)

        sick = declare(person_qr=card["card_payload"], symptoms=["fever", "cough"], other_symptoms="đau đầu",
                       travel="Hà Nội 20/11")
        assert sick.status_code == 202, sick.text
        assert sick.json()["ward_code"] == a and sick.json()["alerted"] is True
        well = declare(person_qr=card["card_payload"], symptoms=[])
        assert well.status_code == 202 and well.json()["alerted"] is False
        # a CCCD holder living in ward b who met a case, declared at the venue in ward a: alert to ward b
        contact = declare(cccd_qr=CCCD.format(ward="Phường Huyền Tụng"), venue_id=venue, contact_with_case=True)
        assert contact.status_code == 202, contact.text
        assert contact.json()["ward_code"] == b and contact.json()["person_id"] != "001099012345"
        # bad input is a clear 4xx
        assert declare(person_id="p1", symptoms=["sneezing_fit"]).status_code == 422
        assert declare(person_id="p1", person_qr=card["card_payload"]).status_code == 422
        assert declare(person_qr=_edit(card["card_payload"], "x")).json()["error"]["code"] == "invalid_card"
        assert http.post(f"{services.ingest_url}/v1/declarations", headers=token(Role.viewer),
                         json={}).status_code == 403

        # the ward's webhook gets the declaration alert, signed, within seconds
        delivered = wait_for(lambda: [d for d in receiver.deliveries if d.alert.get("kind") == "declaration"],
                             timeout=30, what="the declaration alert at the ward's webhook")
        (alert,) = delivered
        assert alert.signature_valid and alert.alert["person_id"] == card["person_id"]
        assert alert.alert["ward_code"] == a and alert.alert["case_id"] == ""
        listed = wait_for(lambda: [x for x in http.get(f"{services.trace_url}/v1/alerts",
                                                        headers=token(Role.health_center, a)).json()["alerts"]
                                   if x["kind"] == "declaration" and x["delivery"]["status"] == "delivered"],
                          timeout=30, what="the declaration alert listed as delivered")
        assert [x["person_id"] for x in listed] == [card["person_id"]]
        ward_b = wait_for(lambda: [x for x in http.get(f"{services.trace_url}/v1/alerts",
                                                        headers=token(Role.health_center, b)).json()["alerts"]
                                   if x["kind"] == "declaration"], timeout=30, what="ward b's alert")
        assert [x["person_id"] for x in ward_b] == [contact.json()["person_id"]]
    finally:
        receiver.stop()

    # stored pseudonymously: no name, no ID number anywhere in the rows
    rows = db.execute("SELECT * FROM declarations WHERE ward_code IN (%(a)s, %(b)s)", {"a": a, "b": b})
    assert len(rows) == 3
    assert "001099012345" not in repr(rows) and "Nguyễn Văn Khai" not in repr(rows)
    # per ward and day in the reports
    today = (now + timedelta(hours=7)).date().isoformat()
    r = http.get(f"{services.trace_url}/v1/reports/declarations", headers=token(Role.viewer),
                 params={"to": today, "days": 1})
    mine = {x["ward_code"]: x for x in r.json()["rows"] if x["ward_code"] in (a, b)}
    assert {w: (x["date"], x["declarations"], x["symptomatic"], x["contact_with_case"], x["alerted"])
            for w, x in mine.items()} == {a: (today, 2, 1, 0, 1), b: (today, 1, 0, 1, 1)}
    # a symptom list for the forms
    r = http.get(f"{services.ingest_url}/v1/declarations/symptoms", headers=device)
    assert {"code": "fever", "label": "Sốt"} in r.json()


def test_citizens_declare_for_themselves_with_their_apps_secret(services, token, db, http, wards) -> None:
    """The contract's "device, or a citizen's secret": a citizen of the app declares for themselves (no one
    else, no card), the alert goes to the ward they give when no card told their residence, and one phone
    cannot flood its ward (a daily limit per citizen). The secret opens nothing else."""
    a = wards[0]
    created = http.post(f"{services.trace_url}/v1/citizens")
    assert created.status_code == 201, created.text
    me, secret = created.json()["person_id"], created.json()["secret"]
    citizen = {"Authorization": f"Bearer {secret}"}
    now = datetime.now(UTC).replace(microsecond=0)

    def declare(headers: dict[str, str] = citizen, **body: object) -> httpx.Response:
        doc = {"declaration_id": str(uuid.uuid4()), "declared_at": now.isoformat(), "contact_with_case": False,
               **body}
        return http.post(f"{services.ingest_url}/v1/declarations", headers=headers, json=doc)

    sick = declare(symptoms=["fever"], ward_code=a)
    assert sick.status_code == 202, sick.text
    assert sick.json()["person_id"] == me and sick.json()["ward_code"] == a and sick.json()["alerted"] is True
    own = declare(person_id=me, symptoms=[])  # naming oneself is the same; no call needed, no ward needed
    assert own.status_code == 202 and own.json()["alerted"] is False, own.text
    # no one else, no card, no ward for a call: clear refusals
    assert declare(person_id="someone_else", symptoms=["cough"], ward_code=a).status_code == 403
    assert declare(cccd_qr=CCCD.format(ward="Phường Huyền Tụng")).status_code == 403
    unknown_ward = declare(symptoms=["cough"])
    assert unknown_ward.status_code == 422 and unknown_ward.json()["error"]["code"] == "ward_unknown"
    assert declare(symptoms=["cough"], ward_code="NOWARD1").json()["error"]["code"] == "unknown_ward"
    # the secret is no API token: no scans, nothing on the trace API, an unknown secret is 401
    assert http.post(f"{services.ingest_url}/v1/scans", headers=citizen, json={}).status_code == 403
    assert http.get(f"{services.trace_url}/v1/alerts", headers=citizen).status_code == 401
    assert declare({"Authorization": "Bearer tvc_not-a-citizen"}, symptoms=[]).status_code == 401
    assert CliRunner().invoke(cli, ["token", "create", "--role", "citizen", "--name", "x"]).exit_code == 2

    # stored pseudonymously as the citizen's own, and the alert reaches the ward's list
    rows = db.execute("SELECT person_id, ward_code, source FROM declarations WHERE person_id = %(p)s "
                      "ORDER BY received_at", {"p": me})
    assert sorted(map(tuple, rows)) == [(me, "", "citizen"), (me, a, "citizen")]
    listed = wait_for(lambda: [x for x in http.get(f"{services.trace_url}/v1/alerts",
                                                    headers=token(Role.health_center, a)).json()["alerts"]
                               if x["kind"] == "declaration" and x["person_id"] == me],
                      timeout=30, what="the citizen's declaration alert on the ward's list")
    assert len(listed) == 1

    # at most citizen_declarations_per_day (10) a day: then 429 with Retry-After
    answers = [declare(symptoms=[]) for _ in range(10)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) > 0, [r.status_code for r in answers]
    assert {r.status_code for r in answers} <= {202, 429}
