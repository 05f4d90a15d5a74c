"""Scans written straight to the ``scans`` topic with Debian's kcat, as a device account configured by
``truyvet kafka-config --role device`` (``kcat -F FILE``): processed like HTTP ones, the invalid ones
dead-lettered with their reason."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from tests.integration.kcat import kcat_config
from tests.integration.topics import records_until
from truyvet.auth import Role
from truyvet.events import redact_identity


def _kcat(settings, lines: list[bytes], config: tuple[Path, dict[str, str]], *args: str) -> None:
    path, env = config
    result = subprocess.run(["kcat", "-F", str(path), "-P", "-t", settings.topic("scans"), "-X", "acks=all",
                             *args], input=b"\n".join(lines) + b"\n", capture_output=True, check=False,
                            timeout=60, env=env)
    assert result.returncode == 0 and b"ERROR" not in result.stderr, result.stderr


def test_kcat_scans_become_visits_and_invalid_ones_reach_the_dlq(services, token, db, http: httpx.Client,
                                                                 tmp_path: Path) -> None:
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
    device = kcat_config("device", tmp_path)
    assert set(device[0].read_text().split("\n")[0:5]) >= {"sasl.username=device", "sasl.mechanism=SCRAM-SHA-512"}
    _kcat(services.settings, [keyed.encode() + b"|" + scan(keyed)] + [b"junk|" + v for v in bad.values()],
          device, "-K", "|")
    # no key at all (-K without the delimiter on the line is not possible: send a separate unkeyed batch)
    _kcat(services.settings, [scan(unkeyed)], device)

    deadline = time.monotonic() + 60
    people: set[str] = set()
    while people != {keyed, unkeyed} and time.monotonic() < deadline:
        rows = db.execute("SELECT DISTINCT person_id FROM visits WHERE person_id IN (%(a)s, %(b)s) "
                          "AND venue_id = %(v)s", {"a": keyed, "b": unkeyed, "v": venue})
        people = {row[0] for row in rows}
        time.sleep(0.2)
    assert people == {keyed, unkeyed}

    def mine(seen: list) -> list[dict[str, object]]:  # noqa: ANN001 - kafka-python's records
        return [letter for rec in seen if marker[:8] in str((letter := orjson.loads(rec.value))["raw"])]

    read = records_until(services.settings, services.settings.topic("scans-dlq"),
                         lambda seen: len(mine(seen)) >= len(bad), timeout=max(1.0, deadline - time.monotonic()),
                         what="a dead letter for every bad record")
    dead = {next(k for k, v in bad.items() if redact_identity(v.decode()) == str(letter["raw"])): letter
            for letter in mine(read)}
    assert set(dead) == set(bad)
    assert "001099012345" not in orjson.dumps(dead["raw id number"]).decode()
    assert "Lý Thị" not in str(dead["raw id number"]["raw"])
    assert "raw ID card number" in str(dead["raw id number"]["reason"])
    assert "unknown venue" in str(dead["unknown venue"]["reason"])
    assert "future" in str(dead["future"]["reason"])
    assert "person_id" in str(dead["missing person"]["reason"])
    assert dead["not JSON"]["reason"] and dead["not JSON"]["topic"] == services.settings.topic("scans")
