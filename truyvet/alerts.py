"""What every producer and reader of alerts shares: settings, the alert id, the addressee ward.

Alerts are raised in two places (the trace API when a case is registered, the stream worker when a
late visit meets an exposure window) and delivered by the dispatcher; all of them agree here on
the id of an alert (one per case and contact, ever) and on the ward it is addressed to.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlparse

from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from truyvet.schema.db import Database
from truyvet.settings import CommonSettings

logger = logging.getLogger(__name__)

RAISED = Counter(
    "truyvet_alerts_raised_total", "Alerts raised (source: case registration or late visit)", ["source"]
)



class AlertSettings(CommonSettings):
    """Alerting (env prefix ``ALERTS_``): tracing depth, follow-up, webhook delivery policy."""

    model_config = SettingsConfigDict(env_prefix="ALERTS_", extra="ignore", frozen=True)

    depth: int = Field(2, ge=1, le=2)
    # Exposure windows stay active this long after the case's infectious_to (late scans still alert).
    followup_days: int = Field(14, ge=1, le=366)
    # Dispatcher metrics port; unset: TRUYVET_WORKER_METRICS_PORT + 64 (8067), so a stack started on its
    # own ports (tests) gets its own dispatcher port too, clear of the workers' (8003, 8004, ...).
    dispatcher_port: int | None = None
    dispatcher_group: str = "truyvet-alert-dispatcher"
    max_attempts: int = Field(12, ge=1)
    backoff_base_seconds: float = Field(0.5, gt=0)
    backoff_cap_seconds: float = Field(30.0, gt=0)
    request_timeout_seconds: float = Field(10.0, gt=0)
    max_in_flight: int = Field(2000, ge=1)
    max_connections: int = Field(32, ge=1)  # concurrent webhook requests of one dispatcher
    webhook_cache_seconds: float = Field(2.0, ge=0)


    @property
    def dispatcher_metrics_port(self) -> int:
        return self.dispatcher_port or self.worker_metrics_port + 64


@lru_cache(maxsize=1)
def get_settings() -> AlertSettings:
    return AlertSettings()


def alert_id(case_id: str, person_id: str) -> str:
    """Deterministic: the same (case, contact) always gives the same id, whoever raises it."""
    return "al_" + hashlib.sha256(f"{case_id}\x1f{person_id}".encode()).hexdigest()[:24]


def residence_wards(db: Database, persons: Iterable[str]) -> dict[str, str]:
    """Residence ward of each person where known (``person_details``, kept by ingest from CCCD scans)."""
    ids = tuple(sorted(set(persons)))
    if not ids:
        return {}
    rows = db.execute(
        "SELECT person_id, residence_ward_code FROM person_details FINAL WHERE person_id IN %(ids)s",
        {"ids": ids},
    )
    return {str(p): str(w) for p, w in rows if w}


def venue_wards(db: Database, venue_ids: Iterable[str]) -> dict[str, str]:
    ids = tuple(sorted(set(venue_ids)))
    if not ids:
        return {}
    rows = db.execute("SELECT venue_id, ward_code FROM venues FINAL WHERE venue_id IN %(ids)s", {"ids": ids})
    return {str(v): str(w) for v, w in rows}


def addressee_ward(residence_ward: str, venue_ward: str) -> str:
    """The ward rule (docs/tracing.md, "Alerts"): a contact belongs to the health center of their
    residence ward where known, else of the ward of their (first) exposure venue. Alerts are addressed
    by it, and a health center sees and reads the contacts it gives."""
    return residence_ward or venue_ward


def addressee_wards(db: Database, exposures: dict[str, str]) -> dict[str, str]:
    """:func:`addressee_ward` of each ``person -> exposure venue``."""
    homes = residence_wards(db, exposures)
    venues = venue_wards(db, exposures.values())
    return {p: addressee_ward(homes.get(p, ""), venues.get(v, "")) for p, v in exposures.items()}


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
