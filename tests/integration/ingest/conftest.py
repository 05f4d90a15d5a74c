"""Ingest test setup: this run's ingest process signs with its own key directory (never the
stack's ``.local/keys``), set before the session's services start."""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import UTC, datetime, timedelta

os.environ.setdefault("INGEST_QR_KEYS_DIR", tempfile.mkdtemp(prefix="truyvet-test-qr-keys-"))


def scan(venue: str, person: str, at: datetime | None = None, direction: str = "in",
         **extra: object) -> dict[str, object]:
    when = at or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    return {"scan_id": str(uuid.uuid4()), "scanned_at": when.isoformat(), "direction": direction,
            "venue_id": venue, "person_id": person, **extra}
