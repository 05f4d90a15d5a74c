"""Printed personal cards (issue 15): signed like venue codes, checked the same at both doors."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ingest.qr import KeyRing, QrVerifier
from ingest.scans import Accepted, Rejected, ScanValidator
from streams.processor import VisitRules
from streams.store import JSON, ChangelogStore
from streams.visit_batch import VisitBatch
from truyvet.cards import CardError, PublicKeys
from truyvet.events import Category, Venue
from truyvet.scan import ParsedScan, parse_scan
from truyvet.scan import Rejected as KafkaRejected

NOW = datetime.now(UTC).replace(microsecond=0)
VENUE = Venue(venue_id="vknown", name="Chợ", category=Category.market_shop, ward_code="01840",
              created_at=NOW - timedelta(days=1))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture()
def ring(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys", reload_seconds=0)
    ring.load()
    return ring


def _doors(ring: KeyRing) -> tuple[ScanValidator, VisitBatch]:
    http = ScanValidator(pseudonym_key=b"k", retention=timedelta(days=28), max_future=timedelta(minutes=5),
                         venue_lookup={"vknown": VENUE}.get, verify_venue_qr=QrVerifier(ring),
                         verify_person_card=ring.verify_card)
    store = ChangelogStore("person-scans", "unused", codec=JSON, bootstrap="unused")
    rules = VisitRules(stay_for=lambda _v: 3600, max_stay=12 * 3600, dedup_window=600, horizon=72 * 3600)
    kafka = VisitBatch(rules=rules, store=store, known_venue={"vknown"}.__contains__, partitions=8,
                       retention_seconds=28 * 86400,
                       person_card=PublicKeys(ring.directory, reload_seconds=0).verify)
    return http, kafka


def _scan(**person: object) -> dict[str, object]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": (NOW - timedelta(minutes=5)).isoformat(),
            "venue_id": "vknown", **person}


def _edited(payload: str, person: str) -> str:
    version, kid, body, sig = payload.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["p"] = person
    return ".".join((version, kid, _b64(orjson.dumps(claims)), sig))


def test_a_card_verifies_to_its_person_with_the_private_ring_and_the_public_keys(ring: KeyRing) -> None:
    payload = ring.sign_card("c0123abc")
    assert payload.startswith(f"TP1.{ring.active_kid}.")
    assert ring.verify_card(payload) == "c0123abc"
    assert PublicKeys(ring.directory).verify(payload) == "c0123abc"


def test_both_doors_accept_a_card_as_the_same_scan(ring: KeyRing) -> None:
    http, kafka = _doors(ring)
    item = _scan(person_qr=ring.sign_card("cperson1"))
    accepted = http.validate(0, item, now=datetime.now(UTC), source="http")
    parsed = kafka.parse([type("R", (), {"value": orjson.dumps(item), "topic": "s", "partition": 0,
                                         "offset": 0, "key": None})()])[0].scan
    assert isinstance(accepted, Accepted) and isinstance(parsed, ParsedScan)
    assert accepted.person_id == parsed.person_id == "cperson1"
    assert accepted.event.person_id == "cperson1"
    assert b"TP1." not in accepted.value  # the card text itself does not travel on


@pytest.mark.parametrize("how", ["edited", "forged", "retired", "two_persons", "not_text", "venue_code"])
def test_both_doors_refuse_a_bad_card_with_the_reason(ring: KeyRing, tmp_path: Path, how: str) -> None:
    http, kafka = _doors(ring)
    good = ring.sign_card("cperson1")
    if how == "edited":
        item, reason = _scan(person_qr=_edited(good, "cperson2")), "signature does not match"
    elif how == "forged":  # same key id, another private key
        other = KeyRing(tmp_path / "other")
        other.load()
        forged = other.sign_card("cperson2").split(".")
        item, reason = _scan(person_qr=".".join((forged[0], ring.active_kid, *forged[2:]))), "signature does not match"
    elif how == "retired":
        old = ring.active_kid
        ring.rotate()
        ring.retire(old)
        item, reason = _scan(person_qr=good), "retired"
    elif how == "two_persons":
        item, reason = _scan(person_qr=good, person_id="p1"), "exactly one of person_id, cccd_qr or person_qr"
    elif how == "not_text":
        item, reason = _scan(person_qr=12), "person_qr"
    else:
        item, reason = _scan(person_qr=ring.sign("vknown")), "not a Truy Vết personal card"
    result = http.validate(0, item, now=datetime.now(UTC), source="http")
    assert isinstance(result, Rejected) and reason in result.error, result
    parsed = parse_scan(orjson.dumps(item), PublicKeys(ring.directory, reload_seconds=0).verify)
    assert isinstance(parsed, KafkaRejected) and reason in parsed.reason, parsed
    assert kafka.check(parsed, int(NOW.timestamp()))[1] == "invalid_scan"


def test_rotation_keeps_old_cards_valid_and_signs_new_ones_with_the_new_key(ring: KeyRing) -> None:
    old = ring.sign_card("cold")
    kid = ring.rotate()
    new = ring.sign_card("cnew")
    public = PublicKeys(ring.directory, reload_seconds=0)
    assert new.split(".")[1] == kid != old.split(".")[1]
    assert public.verify(old) == "cold" and public.verify(new) == "cnew"


def test_a_card_cannot_carry_a_raw_id_number(ring: KeyRing) -> None:
    with pytest.raises(CardError, match="no person id"):
        ring.verify_card(ring.sign_card("001099012345"))


def test_without_a_card_checker_the_kafka_door_refuses_person_qr(ring: KeyRing) -> None:
    parsed = parse_scan(orjson.dumps(_scan(person_qr=ring.sign_card("c1"))))
    assert isinstance(parsed, KafkaRejected) and "person_qr" in parsed.reason


def test_a_null_person_qr_counts_as_absent_at_both_doors(ring: KeyRing) -> None:
    http, _ = _doors(ring)
    item = _scan(person_qr=None, person_id="p1")
    assert isinstance(http.validate(0, item, now=datetime.now(UTC), source="http"), Accepted)
    assert isinstance(parse_scan(orjson.dumps(item), PublicKeys(ring.directory).verify), ParsedScan)


def test_the_worker_needs_only_the_public_halves(ring: KeyRing, tmp_path: Path) -> None:
    """PublicKeys reads ``<kid>.pub`` and ``keyring.json``: a folder without any private key verifies cards,
    and picks up a key rotated later."""
    import shutil

    public_only = tmp_path / "public"
    public_only.mkdir()

    def copy() -> None:
        for path in ring.directory.iterdir():
            if path.suffix in (".pub", ".json"):
                shutil.copy2(path, public_only / path.name)

    copy()
    keys = PublicKeys(public_only, reload_seconds=0)
    assert not list(public_only.glob("*.pem"))
    assert keys.verify(ring.sign_card("cfirst")) == "cfirst"
    ring.rotate()
    copy()
    assert keys.verify(ring.sign_card("csecond")) == "csecond"
