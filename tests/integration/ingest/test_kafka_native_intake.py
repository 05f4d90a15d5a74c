"""Scans written straight to the ``scans`` topic with Debian's kcat: processed like HTTP ones, the
invalid ones dead-lettered with their reason."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from kafka import KafkaConsumer, TopicPartition

from truyvet.auth import Role
from truyvet.events import redact_identity


def _kcat(settings, lines: list[bytes]) -> None:
    result = subprocess.run(["kcat", "-P", "-b", settings.kafka_bootstrap, "-t", settings.topic("scans"),
                             "-K", "|", "-X", "acks=all"], input=b"\n".join(lines) + b"\n",
                            capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def test_kcat_scans_become_visits_and_invalid_ones_reach_the_dlq(services, token, db, http: httpx.Client) -> None:
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Bến xe Bắc Kạn", "category": "bus_station", "ward_code": "01843"})
    venue = r.json()["venue_id"]
    at = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    keyed, unkeyed = f"k{uuid.uuid4().hex[:10]}", f"u{uuid.uuid4().hex[:10]}"
    marker = uuid.uuid4().hex

    def scan(person: str, **kw: object) -> bytes:
        return orjson.dumps({"scan_id": str(uuid.uuid4()), "scanned_at": at, "direction": "in", "venue_id": venue,
                             "person_id": person, **kw})

    bad = {
        "unknown venue": scan(f"x{marker[:8]}", venue_id=f"vnope{marker[:8]}"),
        "not JSON": f"this is not json {marker}".encode(),
        "future": scan(f"f{marker[:8]}", scanned_at="2099-01-01T00:00:00Z"),
        "missing person": orjson.dumps({"scan_id": str(uuid.uuid4()), "scanned_at": at, "venue_id": venue,
                                        "note": marker}),
        # A raw CCCD number as person id, and the card's QR text, straight to Kafka: refused, and the
        # dead letter keeps neither.
        "raw id number": scan("001099012345", note=marker[:8], cccd_qr=f"001099012345||Lý Thị {marker[:8]}|x"),
    }
    _kcat(services.settings, [keyed.encode() + b"|" + scan(keyed)] + [b"junk|" + v for v in bad.values()])
    # no key at all (-K without the delimiter on the line is not possible: send a separate unkeyed batch)
    result = subprocess.run(["kcat", "-P", "-b", services.settings.kafka_bootstrap,
                             "-t", services.settings.topic("scans")], input=scan(unkeyed) + b"\n",
                            capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr

    deadline = time.monotonic() + 60
    people: set[str] = set()
    while people != {keyed, unkeyed} and time.monotonic() < deadline:
        rows = db.execute("SELECT DISTINCT person_id FROM visits WHERE person_id IN (%(a)s, %(b)s) "
                          "AND venue_id = %(v)s", {"a": keyed, "b": unkeyed, "v": venue})
        people = {row[0] for row in rows}
        time.sleep(0.2)
    assert people == {keyed, unkeyed}

    consumer = KafkaConsumer(bootstrap_servers=services.settings.kafka_bootstrap, enable_auto_commit=False)
    dead: dict[str, dict[str, object]] = {}
    try:
        topic = services.settings.topic("scans-dlq")
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        while len(dead) < len(bad) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    letter = orjson.loads(rec.value)
                    raw = str(letter["raw"])
                    if marker[:8] in raw:
                        name = next(k for k, v in bad.items() if redact_identity(v.decode()) == raw)
                        dead[name] = letter
    finally:
        consumer.close()
    assert set(dead) == set(bad)
    assert "001099012345" not in orjson.dumps(dead["raw id number"]).decode()
    assert "Lý Thị" not in str(dead["raw id number"]["raw"])
    assert "raw ID card number" in str(dead["raw id number"]["reason"])
    assert "unknown venue" in str(dead["unknown venue"]["reason"])
    assert "future" in str(dead["future"]["reason"])
    assert "person_id" in str(dead["missing person"]["reason"])
    assert dead["not JSON"]["reason"] and dead["not JSON"]["topic"] == services.settings.topic("scans")
