"""Signed venue QR payloads: format, edits, validity window, rotation and retirement."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ingest.qr import KeyRing, KeyRingError, QrError, QrVerifier

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


@pytest.fixture()
def ring(tmp_path: Path) -> KeyRing:
    r = KeyRing(tmp_path / "keys", reload_seconds=0)
    r.load()
    return r


def test_first_load_generates_a_private_key_readable_only_by_owner(ring: KeyRing) -> None:
    pems = list(ring.directory.glob("*.pem"))
    assert len(pems) == 1 and pems[0].stem == ring.active_kid
    assert pems[0].stat().st_mode & 0o077 == 0


def test_payload_is_versioned_with_key_id_and_round_trips(ring: KeyRing) -> None:
    text = ring.sign("vabc", valid_from=NOW - timedelta(hours=1), valid_until=NOW + timedelta(hours=1))
    version, kid, body, sig = text.split(".")
    assert (version, kid) == ("TV1", ring.active_kid)
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims["v"] == "vabc"
    assert len(base64.urlsafe_b64decode(sig + "==")) == 64
    assert ring.verify(text, NOW) == "vabc"


def test_edited_payload_is_refused(ring: KeyRing) -> None:
    text = ring.sign("vabc")
    _, kid, _, sig = text.split(".")
    forged_body = base64.urlsafe_b64encode(orjson.dumps({"v": "vother"})).decode().rstrip("=")
    with pytest.raises(QrError, match="signature does not match"):
        ring.verify(f"TV1.{kid}.{forged_body}.{sig}", NOW)
    flipped = text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]
    with pytest.raises(QrError, match="signature"):
        ring.verify(flipped, NOW)


@pytest.mark.parametrize("text, reason", [
    ("https://example.com/venue/1", "not a Truy Vết venue code"),
    ("TV2.k1.e30.AAAA", "unsupported code version"),
    ("TV1.kdeadbeef.e30.AAAA", "unknown signing key"),
])
def test_foreign_or_unknown_key_payloads_are_refused(ring: KeyRing, text: str, reason: str) -> None:
    with pytest.raises(QrError, match=reason):
        ring.verify(text, NOW)


def test_validity_window_is_enforced(ring: KeyRing) -> None:
    text = ring.sign("vwedding", valid_from=NOW, valid_until=NOW + timedelta(hours=6))
    assert ring.verify(text, NOW + timedelta(hours=1)) == "vwedding"
    with pytest.raises(QrError, match="not valid before"):
        ring.verify(text, NOW - timedelta(seconds=1))
    with pytest.raises(QrError, match="expired"):
        ring.verify(text, NOW + timedelta(hours=6, seconds=1))


def test_rotated_out_key_still_verifies_until_retired(ring: KeyRing) -> None:
    old_kid = ring.active_kid
    old = ring.sign("vold")
    new_kid = ring.rotate()
    assert new_kid != old_kid and ring.active_kid == new_kid
    new = ring.sign("vnew")
    assert new.split(".")[1] == new_kid
    assert ring.verify(old, NOW) == "vold"
    ring.retire(old_kid)
    with pytest.raises(QrError, match="retired"):
        ring.verify(old, NOW)
    assert ring.verify(new, NOW) == "vnew"
    assert set(ring.public_keys()) == {new_kid}


def test_active_key_cannot_be_retired(ring: KeyRing) -> None:
    with pytest.raises(KeyRingError, match="rotate before"):
        ring.retire(ring.active_kid)


def test_running_verifier_sees_retirement_made_by_another_process(ring: KeyRing) -> None:
    """The CLI retires a key in its own KeyRing; the API's cached verifier must refuse it."""
    verifier = QrVerifier(ring)
    old = ring.sign("vold")
    assert verifier(old, NOW) == "vold"  # now cached
    other = KeyRing(ring.directory)
    other.load()
    old_kid = other.active_kid
    other.rotate()
    other.retire(old_kid)
    with pytest.raises(QrError, match="retired"):
        verifier(old, NOW)


def test_signature_is_deterministic_for_the_same_key(ring: KeyRing) -> None:
    assert ring.sign("v1", valid_until=NOW) == ring.sign("v1", valid_until=NOW)
