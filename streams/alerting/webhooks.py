"""Where each ward health center receives its alerts: URL and signing secret, in ClickHouse.

The secret is stored encrypted (Fernet, ``fernet:`` + token) with the installation's webhook key:
``ALERTS_WEBHOOK_KEY`` (a Fernet key) if set, else one derived from the installation's secret
``<data_dir>/secrets/webhook_key`` (truyvet/secretstore.py: 0600 in a 0700 folder), which the first
``truyvet webhook set`` makes. A secret stored in clear by an older version
is still read (set the webhook again to encrypt it). Rotating the key: set every webhook again with the
new key (``truyvet webhook set`` re-encrypts); secrets sealed with the old key then no longer decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from streams.alerting.settings import AlertSettings, get_settings
from streams.alerting.targets import check_url
from truyvet.exceptions import ConfigError
from truyvet.schema.db import Database
from truyvet.secretstore import ensure_secret, read_secret, secrets_dir

SEALED = "fernet:"


def valid_url(url: str) -> bool:
    """An http(s) URL with a host (where it points is checked by :func:`targets.check_url`)."""
    return check_url(url, allow_private=True) is None


@dataclass(frozen=True)
class Webhook:
    ward_code: str
    url: str
    secret: str


WEBHOOK_KEY = "webhook_key"  # the installation secret's file name under <data_dir>/secrets


def key_file(settings: AlertSettings) -> Path:
    return secrets_dir(settings.data_dir) / WEBHOOK_KEY


def cipher(settings: AlertSettings | None = None, *, create: bool = False) -> Fernet:
    """The installation's webhook cipher; ``create``: make the key file if there is no key yet.

    :raises ConfigError: no key (neither ``ALERTS_WEBHOOK_KEY`` nor the key file), or a malformed one.
    """
    settings = settings or get_settings()
    if settings.webhook_key is not None:
        raw = settings.webhook_key.get_secret_value().encode()
    else:
        secret = (ensure_secret if create else read_secret)(settings.data_dir, WEBHOOK_KEY)
        if not secret:
            raise ConfigError(f"no webhook key: set ALERTS_WEBHOOK_KEY or make {key_file(settings)} "
                              "(`truyvet webhook set` makes it)")
        raw = base64.urlsafe_b64encode(hashlib.sha256(b"webhook-secrets:" + secret.encode()).digest())
    try:
        return Fernet(raw)
    except ValueError as exc:
        raise ConfigError("the webhook key is not a Fernet key (32 url-safe base64-encoded bytes)") from exc


def seal(box: Fernet, secret: str) -> str:
    return SEALED + box.encrypt(secret.encode()).decode()


def unseal(box: Fernet | None, stored: str) -> str:
    """The clear secret; ConfigError if it is sealed and cannot be opened with ``box``."""
    if not stored.startswith(SEALED):
        return stored  # stored in clear before secrets were encrypted
    if box is None:
        raise ConfigError("a webhook secret is encrypted but no webhook key is configured (ALERTS_WEBHOOK_KEY)")
    try:
        return box.decrypt(stored[len(SEALED):].encode()).decode()
    except InvalidToken as exc:
        raise ConfigError("a webhook secret does not decrypt with this installation's webhook key") from exc


def set_webhook(db: Database, *, ward_code: str, url: str, secret: str, box: Fernet | None = None) -> None:
    """Store the ward's webhook, its secret sealed with ``box`` (default: the installation's key)."""
    box = box or cipher(create=True)
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert(
        "ward_webhooks",
        ["ward_code", "url", "secret", "updated_at", "version"],
        [(ward_code, url, seal(box, secret), now, time.time_ns())],
    )


def webhooks(db: Database, box: Fernet | None = None) -> dict[str, Webhook]:
    """Every ward's webhook with its clear secret (``box`` default: the installation's key, if any).

    A webhook whose secret cannot be opened is left out (its alerts wait and retry: "no webhook
    configured") and named in the raised error only if no webhook at all could be read.
    """
    if box is None:
        try:
            box = cipher()
        except ConfigError:
            box = None
    rows = db.execute("SELECT ward_code, url, secret FROM ward_webhooks FINAL")
    out: dict[str, Webhook] = {}
    errors: list[str] = []
    for w, u, s in rows:
        if not u:
            continue
        try:
            out[str(w)] = Webhook(str(w), str(u), unseal(box, str(s)))
        except ConfigError as exc:
            errors.append(f"ward {w}: {exc}")
    if errors and not out:
        raise ConfigError("; ".join(errors))
    return out
