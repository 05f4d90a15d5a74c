"""Where each ward health center receives its alerts: URL and signing secret, in ClickHouse.

The secret is stored encrypted (Fernet, ``fernet:`` + token) with the installation's webhook key:
``ALERTS_WEBHOOK_KEY`` if set, else the key file ``<data_dir>/secrets/webhook.key`` (0600 in a 0700
folder), which the first ``truyvet webhook set`` creates. A secret stored in clear by an older version
is still read (set the webhook again to encrypt it). Rotating the key: set every webhook again with the
new key (``truyvet webhook set`` re-encrypts); secrets sealed with the old key then no longer decrypt.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from streams.alerting.settings import AlertSettings, get_settings
from streams.alerting.targets import check_url
from truyvet.exceptions import ConfigError
from truyvet.schema.db import Database

SEALED = "fernet:"


def valid_url(url: str) -> bool:
    """An http(s) URL with a host (where it points is checked by :func:`targets.check_url`)."""
    return check_url(url, allow_private=True) is None


@dataclass(frozen=True)
class Webhook:
    ward_code: str
    url: str
    secret: str


def key_file(settings: AlertSettings) -> Path:
    return settings.data_dir / "secrets" / "webhook.key"


def cipher(settings: AlertSettings | None = None, *, create: bool = False) -> Fernet:
    """The installation's webhook cipher; ``create``: make the key file if there is no key yet.

    :raises ConfigError: no key (neither ``ALERTS_WEBHOOK_KEY`` nor the key file), or a malformed one.
    """
    settings = settings or get_settings()
    if settings.webhook_key is not None:
        raw = settings.webhook_key.get_secret_value().encode()
    else:
        path = key_file(settings)
        if not path.exists() and create:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key())
        if not path.exists():
            raise ConfigError(f"no webhook key: set ALERTS_WEBHOOK_KEY or create {path} "
                              "(`truyvet webhook set` creates it)")
        raw = path.read_bytes().strip()
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
