"""The alert contracts every side shares: the alert id and the ward rule.

Alerts are raised in two places (the trace API when a case is registered, the stream worker when a
late visit meets an exposure window) and delivered by the dispatcher (all of it in streams/alerting);
they, and the trace API's answers, agree here on the id of an alert (one per case and contact, ever)
and on the ward a contact belongs to.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from truyvet.schema.db import Database

logger = logging.getLogger(__name__)




def alert_id(case_id: str, person_id: str) -> str:
    """Deterministic: the same (case, contact) always gives the same id, whoever raises it."""
    return "al_" + hashlib.sha256(f"{case_id}\x1f{person_id}".encode()).hexdigest()[:24]


def residence_wards(db: Database, persons: Iterable[str]) -> dict[str, str]:
    """Residence ward of each person where known (``person_wards``, kept by ingest beside the personal
    details of CCCD scans and printed cards; the worker's account cannot read the details themselves)."""
    ids = tuple(sorted(set(persons)))
    if not ids:
        return {}
    rows = db.execute(
        "SELECT person_id, residence_ward_code FROM person_wards FINAL WHERE person_id IN %(ids)s",
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


