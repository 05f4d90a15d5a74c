"""Where each ward health center receives its alerts: URL and signing secret, in ClickHouse."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

from truyvet.schema.db import Database


def valid_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


@dataclass(frozen=True)
class Webhook:
    ward_code: str
    url: str
    secret: str


def set_webhook(db: Database, *, ward_code: str, url: str, secret: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert(
        "ward_webhooks",
        ["ward_code", "url", "secret", "updated_at", "version"],
        [(ward_code, url, secret, now, time.time_ns())],
    )


def webhooks(db: Database) -> dict[str, Webhook]:
    rows = db.execute("SELECT ward_code, url, secret FROM ward_webhooks FINAL")
    return {str(w): Webhook(str(w), str(u), str(s)) for w, u, s in rows if u}
