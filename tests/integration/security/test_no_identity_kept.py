"""No ID card number or chip-card text is kept anywhere, wherever a client puts it (issue 13, item 8):
dead letters of records written straight to Kafka, rejection reasons of HTTP intake, the audit log's
free text, and the services' logs. Card text sits under odd keys, in keys, nested, full-width, escaped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from kafka import KafkaProducer

from tests.integration.topics import records_until
from truyvet.auth import Role
from truyvet.kafka_clients import client_kwargs


def _card(marker: str) -> tuple[str, tuple[str, ...]]:
    number = "0010" + str(int(marker[:6], 16) % 10**8).zfill(8)
    name = f"Nguyễn Thị Bí Mật {marker[:4]}"
    card = f"{number}||{name}|01011990|Nữ|Tổ 9, Phường Đức Xuân, Bắc Kạn|01012021"
    wide_number = number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    return card, (number, name, "Tổ 9, Phường Đức Xuân", wide_number)


def test_dead_letters_keep_no_card_text_under_any_key(services) -> None:  # noqa: ANN001
    marker = uuid.uuid4().hex
    card, secrets = _card(marker)
    wide = card.translate(str.maketrans("0123456789|", "０１２３４５６７８９｜"))
    escaped = orjson.dumps({"m": marker, "k": card}).decode().replace(card[:12], "".join(
        f"\\u{ord(c):04x}" for c in card[:12])).encode()
    records = [
        orjson.dumps({"m": marker, "scan_id": "bad", "ghi_chu": card}),
        orjson.dumps({"m": marker, card: "as a key", "scan_id": "bad"}),
        orjson.dumps({"m": marker, "a": {"b": [1, {"c": card}]}}),
        orjson.dumps({"m": marker, "scan_id": str(uuid.uuid4()), "person_id": secrets[0], "venue_id": "v",
                      "scanned_at": datetime.now(UTC).isoformat()}),
        orjson.dumps({"m": marker, "x": wide}),
        escaped,
        f"not json {marker}\n{card}".encode(),
    ]
    settings = services.settings
    producer = KafkaProducer(**client_kwargs(settings), acks="all")
    try:
        for value in records:
            producer.send(settings.topic("scans"), value=value, key=b"k")
        producer.flush(timeout=30)
    finally:
        producer.close()
    letters = _dead_letters(settings, marker, len(records))
    assert len(letters) == len(records)
    for letter in letters:
        text = orjson.dumps(letter).decode()
        assert not any(s in text for s in secrets), text
        assert letter["reason"] and marker in str(letter["raw"])
    assert "Nguyễn" not in services.log("worker") and secrets[0] not in services.log("worker")


def _dead_letters(settings, marker: str, count: int) -> list[dict[str, object]]:  # noqa: ANN001
    def mine(seen: list) -> list[dict[str, object]]:  # noqa: ANN001 - kafka-python's records
        return [letter for rec in seen if marker in (letter := orjson.loads(rec.value))["raw"]]

    return mine(records_until(settings, settings.topic("scans-dlq"), lambda seen: len(mine(seen)) >= count,
                              what=f"{count} dead letters"))


def test_http_rejections_and_the_audit_log_keep_no_card_text(services, token, http: httpx.Client) -> None:  # noqa: ANN001
    marker = uuid.uuid4().hex
    card, secrets = _card(marker)
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    base = {"scan_id": str(uuid.uuid4()), "scanned_at": at, "venue_id": "vnope", "person_id": "p1"}
    items = [{**base, card: 1}, {**base, secrets[0]: "x"}, {**base, "scan_id": card},
             {**base, "ghi_chu": card}, {**base, "person_id": secrets[3]}, {**base, "cccd_qr": card, "person_id": None},
             {**base, "venue_id": secrets[0]}]
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device), json=items)
    assert r.status_code == 202 and len(r.json()["rejected"]) == len(items), r.text
    assert not any(s in r.text for s in secrets), r.text
    for rejected in r.json()["rejected"]:
        assert rejected["error"]

    hc = token(Role.epidemiologist)
    r = http.get(f"{services.trace_url}/v1/persons/p{marker[:8]}", headers=hc, params={"reason": f"gọi {card}"})
    assert r.status_code == 404
    admin = token(Role.admin)
    entries = http.get(f"{services.trace_url}/v1/audit", headers=admin,
                       params={"action": "person.read_denied", "limit": 1000}).json()["entries"]
    mine = [e for e in entries if f"p{marker[:8]}" in e["params"]["persons"]]
    assert mine and all(not any(s in orjson.dumps(e).decode() for s in secrets) for e in mine)
    for name in ("ingest", "trace"):
        log = services.log(name)
        assert not any(s in log for s in secrets), name
