"""Printed personal cards: the signed text of a card's QR code, checked by both scan doors.

``TP1.<kid>.<b64url(json)>.<b64url(ed25519 signature)>`` with ``{"p": person_id, "iat": epoch}``: the
same key ring as venue codes (``ingest/qr.py``: ``<kid>.pem`` + ``keyring.json``), so a rotation makes
new cards with the new key while old cards keep verifying, and retiring a key refuses its cards. The
card carries only the pseudonymous person id (no name, no ID number): a venue that scans it learns
nothing else (docs/domain.md, lesson 3).

HTTP ingest verifies with its :class:`ingest.qr.KeyRing`; the stream worker, which holds no private
key use, reads the same directory's public halves through :class:`PublicKeys`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from truyvet.events import is_raw_id_number
from truyvet.signing import sign_payload, verified_claims

logger = logging.getLogger(__name__)

CARD_VERSION = "TP1"
KEYRING_FILE = "keyring.json"


class CardError(ValueError):
    """A personal card payload is refused; the message is the reason shown to the client."""


def sign_card(person_id: str, *, kid: str, key: Ed25519PrivateKey, issued_at: int) -> str:
    """The QR text of a personal card for ``person_id``, signed with ``key`` (key id ``kid``)."""
    return sign_payload(CARD_VERSION, kid, key, {"p": person_id, "iat": issued_at})


def verify_card(text: str, public_key: Callable[[str], Ed25519PublicKey | None],
                retired: Callable[[str], bool]) -> str:
    """The person id of a card payload, or :class:`CardError` with the reason (edited, forged, retired key)."""
    if not isinstance(text, str) or len(text) > 1000:
        raise CardError("not a Truy Vết personal card")
    parts = text.strip().split(".")
    if len(parts) != 4 or parts[0] != CARD_VERSION:
        raise CardError("not a Truy Vết personal card")
    _, kid, body, sig = parts
    if retired(kid):
        raise CardError(f"signing key {kid[:16]!r} is retired")
    key = public_key(kid)
    if key is None:
        raise CardError(f"unknown signing key {kid[:16]!r}")
    claims = verified_claims(CARD_VERSION, kid, body, sig, key)
    if claims is None:
        raise CardError("signature does not match (edited or forged card)")
    person = claims.get("p") if isinstance(claims, dict) else None
    if not isinstance(person, str) or not person or is_raw_id_number(person):
        raise CardError("signed content has no person id")
    return person


def _public_key(directory: Path, kid: str) -> Ed25519PublicKey | None:
    """The key's public half from ``<kid>.pub`` (ingest writes it beside the private key)."""
    try:
        key = serialization.load_pem_public_key((directory / f"{kid}.pub").read_bytes())
    except FileNotFoundError:
        logger.warning("no public key file for %s yet (written by ingest when it loads its keys)", kid)
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


class PublicKeys:
    """The public halves (``<kid>.pub``) of a key directory written by ``ingest.qr.KeyRing``, re-read when
    ``keyring.json`` changes (checked at most every ``reload_seconds``); never the private keys."""

    def __init__(self, directory: Path, *, reload_seconds: float = 1.0) -> None:
        self.directory = directory
        self._reload = reload_seconds
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._mtime: float | None = None
        self._public: dict[str, Ed25519PublicKey] = {}
        self._retired: set[str] = set()

    def _refresh(self) -> None:
        if time.monotonic() - self._checked < self._reload:
            return
        with self._lock:
            self._checked = time.monotonic()
            state_path = self.directory / KEYRING_FILE
            try:
                mtime = state_path.stat().st_mtime
                if mtime == self._mtime:
                    return
                state = orjson.loads(state_path.read_bytes())
                keys = dict(state.get("keys") or {})
                public: dict[str, Ed25519PublicKey] = {}
                for kid in keys:
                    key = _public_key(self.directory, kid)
                    if key is not None:
                        public[kid] = key
            except (OSError, ValueError) as exc:
                logger.warning("card keys in %s not readable yet: %s", self.directory, exc)
                return
            self._public = public
            self._retired = {kid for kid, info in keys.items() if (info or {}).get("retired_at")}
            self._mtime = mtime if len(public) == len(keys) else None  # a missing .pub: look again next time

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        self._refresh()
        return self._public.get(kid)

    def retired(self, kid: str) -> bool:
        self._refresh()
        return kid in self._retired

    def verify(self, text: str) -> str:
        return verify_card(text, self.public_key, self.retired)
