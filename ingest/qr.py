"""Signed venue QR payloads: ``TV1.<kid>.<b64url(json)>.<b64url(ed25519 signature)>``.

The signature covers ``TV1.<kid>.<b64url(json)>``; the JSON is ``{"v": venue_id, "nbf": epoch?,
"exp": epoch?}``. Ed25519 (public-key) so a phone holding the public keys can verify offline.

Keys live in one directory (never in git; default ``<data_dir>/secrets/qr-keys``): ``<kid>.pem`` private
keys (mode 0600) and ``keyring.json`` naming the active key and the retired ones. Rotation makes a
new key active while the old ones keep verifying; retirement makes a key's payloads refused. A
running ingest notices a changed ``keyring.json`` within ``reload_seconds``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ingest.exceptions import IngestError
from truyvet.cards import sign_card, verify_card
from truyvet.signing import sign_payload, verified_claims

logger = logging.getLogger(__name__)

VERSION = "TV1"
STATE_FILE = "keyring.json"


class QrError(ValueError):
    """A venue QR payload is refused; the message is the reason shown to the client."""


class KeyRingError(IngestError):
    """The key directory cannot be used (unknown key id, retiring the active key...)."""


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    created_at: str
    retired_at: str | None
    active: bool


class KeyRing:
    """The signing keys in ``directory``: load, generate on first use, rotate, retire.

    :param reload_seconds: how often :meth:`maybe_reload` looks at ``keyring.json`` again.
    """

    def __init__(self, directory: Path, *, reload_seconds: float = 1.0) -> None:
        self.directory = directory
        self._reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtime: float | None = None
        self._active: str | None = None
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        self._retired: set[str] = set()
        self._state: dict[str, object] = {}

    # -- files -----------------------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.directory / STATE_FILE

    def _read_state(self) -> dict[str, object]:
        try:
            return dict(orjson.loads(self._state_path.read_bytes()))
        except FileNotFoundError:
            return {"active": None, "keys": {}}

    def _write_state(self, state: dict[str, object]) -> None:
        tmp = self.directory / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
        tmp.replace(self._state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Thread and process lock (uvicorn workers and the CLI share the directory)."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with (self.directory / ".lock").open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield

    def _new_key(self) -> str:
        kid = "k" + secrets.token_hex(4)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = self.directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        _write_public(self.directory, kid, key)  # before keyring.json names the key
        return kid

    def load(self) -> None:
        """(Re)read the directory; generate the first key if there is none."""
        with self._locked():
            state = self._read_state()
            if not state.get("active"):
                kid = self._new_key()
                keys = dict(state.get("keys") or {})  # type: ignore[call-overload]
                keys[kid] = {"created_at": _now(), "retired_at": None}
                state = {"active": kid, "keys": keys}
                self._write_state(state)
                logger.info("generated the first venue QR signing key %s in %s", kid, self.directory)
            keys = dict(state["keys"])  # type: ignore[call-overload]
            private: dict[str, Ed25519PrivateKey] = {}
            for kid in keys:
                key = serialization.load_pem_private_key((self.directory / f"{kid}.pem").read_bytes(), None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise KeyRingError("not an Ed25519 key", kid=kid)
                private[kid] = key
                _write_public(self.directory, kid, key)
            self._private = private
            self._public = {kid: key.public_key() for kid, key in private.items()}
            self._retired = {kid for kid, info in keys.items() if info.get("retired_at")}
            self._active = str(state["active"])
            self._state = state
            self._mtime = self._state_path.stat().st_mtime
            self._checked = time.monotonic()

    def maybe_reload(self) -> None:
        """Pick up a rotation or retirement made by another process (``truyvet qr-key``)."""
        if time.monotonic() - self._checked < self._reload_seconds:
            return
        self._checked = time.monotonic()
        try:
            mtime = self._state_path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime:
            self.load()

    def rotate(self) -> str:
        """Make a new key active; earlier keys keep verifying until retired. Returns the new key id."""
        with self._locked():
            state = self._read_state()
            kid = self._new_key()
            keys = dict(state.get("keys") or {})  # type: ignore[call-overload]
            keys[kid] = {"created_at": _now(), "retired_at": None}
            self._write_state({"active": kid, "keys": keys})
        self.load()
        return kid

    def retire(self, kid: str) -> None:
        """Refuse every payload signed by ``kid`` from now on (the active key cannot be retired)."""
        with self._locked():
            state = self._read_state()
            keys = dict(state.get("keys") or {})  # type: ignore[call-overload]
            if kid not in keys:
                raise KeyRingError("unknown key id", kid=kid)
            if state.get("active") == kid:
                raise KeyRingError("rotate before retiring the active key", kid=kid)
            keys[kid] = {**keys[kid], "retired_at": keys[kid].get("retired_at") or _now()}
            self._write_state({**state, "keys": keys})
        self.load()

    def keys(self) -> list[KeyInfo]:
        keys = dict(self._state.get("keys") or {})  # type: ignore[call-overload]
        return [KeyInfo(kid, info.get("created_at", ""), info.get("retired_at"), kid == self._active)
                for kid, info in keys.items()]

    def public_keys(self) -> dict[str, bytes]:
        """Raw 32-byte public keys of the keys that still verify (for phones verifying offline)."""
        return {kid: key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                for kid, key in self._public.items() if kid not in self._retired}

    # -- sign / verify ---------------------------------------------------------------------------
    @property
    def active_kid(self) -> str:
        if self._active is None:
            self.load()
        return str(self._active)

    def sign(self, venue_id: str, *, valid_from: datetime | None = None,
             valid_until: datetime | None = None) -> str:
        """The QR text of a venue, signed with the active key (Ed25519 is deterministic)."""
        kid = self.active_kid
        claims: dict[str, object] = {"v": venue_id}
        if valid_from is not None:
            claims["nbf"] = int(valid_from.timestamp())
        if valid_until is not None:
            claims["exp"] = int(valid_until.timestamp())
        return sign_payload(VERSION, kid, self._private[kid], claims)

    def verify(self, text: str, at: datetime) -> str:
        """Check ``text`` as a venue QR payload at time ``at``; return its venue id.

        :raises QrError: with the reason (edited, unknown key, retired key, outside validity...).
        """
        claims = self.verify_signature(text)
        return check_window(claims, at)

    def verify_signature(self, text: str) -> Claims:
        self.maybe_reload()
        parts = text.strip().split(".")
        if len(parts) != 4 or not parts[0].startswith("TV"):
            raise QrError("not a Truy Vết venue code")
        version, kid, body, sig = parts
        if version != VERSION:
            raise QrError(f"unsupported code version {version[:8]!r}")
        if kid in self._retired:
            raise QrError(f"signing key {kid!r} is retired")
        public = self._public.get(kid)
        if public is None:
            raise QrError(f"unknown signing key {kid[:16]!r}")
        raw = verified_claims(version, kid, body, sig, public)
        if raw is None:
            raise QrError("signature does not match (edited or forged code)")
        if not isinstance(raw, dict) or not isinstance(raw.get("v"), str):
            raise QrError("signed content has no venue id")
        return Claims(kid=kid, venue_id=raw["v"], nbf=_int_or_none(raw.get("nbf")),
                      exp=_int_or_none(raw.get("exp")))

    def is_retired(self, kid: str) -> bool:
        self.maybe_reload()
        return kid in self._retired

    # -- personal cards (truyvet/cards.py: same keys, their own payload version) -----------------
    def sign_card(self, person_id: str) -> str:
        """The QR text of a printed personal card, signed with the active key."""
        kid = self.active_kid
        return sign_card(person_id, kid=kid, key=self._private[kid], issued_at=int(time.time()))

    def verify_card(self, text: str) -> str:
        """The person id of a card payload; :class:`truyvet.cards.CardError` with the reason if refused."""
        self.maybe_reload()
        return verify_card(text, self._public.get, self._retired.__contains__)


@dataclass(frozen=True)
class Claims:
    kid: str
    venue_id: str
    nbf: int | None
    exp: int | None


def check_window(claims: Claims, at: datetime) -> str:
    """The venue id if ``at`` lies in the code's validity window, else :class:`QrError`."""
    ts = at.timestamp()
    if claims.nbf is not None and ts < claims.nbf:
        raise QrError(f"code not valid before {_iso(claims.nbf)}")
    if claims.exp is not None and ts > claims.exp:
        raise QrError(f"code expired at {_iso(claims.exp)}")
    return claims.venue_id


class QrVerifier:
    """Verifies scans' ``venue_qr`` with a cache: a venue's code is scanned thousands of times, so the
    signature is checked once per distinct text; retirement and the window are checked every time."""

    def __init__(self, ring: KeyRing, *, cache_size: int = 100_000) -> None:
        self._ring = ring
        self._cache: dict[str, Claims] = {}
        self._cache_size = cache_size

    def __call__(self, text: str, at: datetime) -> str:
        claims = self._cache.get(text)
        if claims is None:
            claims = self._ring.verify_signature(text)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[text] = claims
        elif self._ring.is_retired(claims.kid):
            raise QrError(f"signing key {claims.kid!r} is retired")
        return check_window(claims, at)


def _write_public(directory: Path, kid: str, key: Ed25519PrivateKey) -> None:
    """``<kid>.pub``: the public half alone, for readers that must not hold the private key (the stream
    worker checking personal cards, truyvet/cards.py); written once per key."""
    path = directory / f"{kid}.pub"
    if path.exists():
        return
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    tmp = directory / f".{kid}.pub.{os.getpid()}.tmp"
    tmp.write_bytes(pem)
    tmp.replace(path)


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise QrError("validity times must be integers")
    return value


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
