"""Signed QR payloads: ``<version>.<key id>.<claims>.<signature>``, base64url without padding, Ed25519 over
``<version>.<key id>.<claims>``. Venue codes (ingest/qr.py) and personal cards (truyvet/cards.py) are both
written and opened here; each keeps its own version, claims and reasons for a refusal."""

from __future__ import annotations

import base64
import binascii

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_payload(version: str, kid: str, key: Ed25519PrivateKey, claims: dict[str, object]) -> str:
    signed = f"{version}.{kid}.{b64(orjson.dumps(claims))}"
    return f"{signed}.{b64(key.sign(signed.encode()))}"


def verified_claims(version: str, kid: str, body: str, signature: str, key: Ed25519PublicKey) -> object | None:
    """The decoded claims when ``signature`` is ``key``'s over ``version.kid.body``; ``None`` when it is not
    (edited, forged, or not base64/JSON at all)."""
    try:
        key.verify(unb64(signature), f"{version}.{kid}.{body}".encode())
        return orjson.loads(unb64(body))
    except (InvalidSignature, binascii.Error, ValueError):
        return None
