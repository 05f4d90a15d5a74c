"""Venue registration and the venue's signed code (PNG, SVG, poster): the service under ingest/routes/venues.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import State

from ingest.config import IngestSettings
from ingest.exceptions import KafkaUnavailable
from ingest.intake import unavailable
from ingest.models import VenueCreate, VenuePublic
from ingest.qr import KeyRing
from ingest.venues import VenueStore, new_venue_id, venue_message
from truyvet.auth import Principal
from truyvet.events import Topics, Venue
from truyvet.posters import poster_venues, posters_pdf
from truyvet.roster import current_roster
from truyvet.schema.db import DatabaseError
from truyvet.web import ApiError

logger = logging.getLogger(__name__)


async def register(state: State, body: VenueCreate, principal: Principal) -> VenuePublic:
    """Store the venue (ClickHouse, then the ``venues`` topic) with its signed QR payload."""
    store: VenueStore = state.venues
    keys: KeyRing = state.keys
    settings: IngestSettings = state.settings
    if not await run_in_threadpool(store.ward_exists, body.ward_code):
        raise ApiError(422, "unknown_ward", f"ward_code {body.ward_code!r} is not a loaded ward or commune")
    if body.valid_from and body.valid_until and body.valid_until <= body.valid_from:
        raise ApiError(422, "invalid_request", "valid_until must be after valid_from")
    if body.roster_id is not None and not await run_in_threadpool(on_roster, state, body.ward_code, body.roster_id):
        raise ApiError(422, "unknown_roster_id",
                       f"roster_id {body.roster_id!r} is not on ward {body.ward_code}'s roster")
    venue = Venue(venue_id=new_venue_id(), created_at=datetime.now(UTC), **body.model_dump(exclude={"roster_id"}))
    keys.maybe_reload()
    kid = keys.active_kid
    payload = keys.sign(venue.venue_id, valid_from=venue.valid_from, valid_until=venue.valid_until)

    def record() -> None:
        store.save(venue)
        store.save_qr(venue.venue_id, payload, kid)
        if body.roster_id is not None:  # issue 15: the establishment it stands for (compliance)
            state.records.insert("venue_roster", ["venue_id", "roster_id", "updated_at"],
                                 [(venue.venue_id, body.roster_id, datetime.now(UTC).replace(microsecond=0))])

    try:
        await run_in_threadpool(record)
        await state.producer.send_raw(settings.topic(Topics.VENUES), venue.venue_id.encode(),
                                                  venue_message(venue))
    except DatabaseError as exc:
        logger.warning("venue not stored: %s", exc)
        raise unavailable(state, "clickhouse") from exc
    except KafkaUnavailable as exc:
        raise unavailable(state, "kafka") from exc
    logger.info("venue %s registered by %s (QR key %s)", venue.venue_id, principal.actor, kid)
    return VenuePublic(**venue.model_dump(), qr_payload=payload, key_id=kid, roster_id=body.roster_id)


async def signed(state: State, venue_id: str) -> tuple[Venue, str]:
    """The venue and the text of its QR code (404 for an unknown venue)."""
    store: VenueStore = state.venues
    venue = await run_in_threadpool(store.get, venue_id)
    if venue is None:
        raise ApiError(404, "not_found", f"unknown venue {venue_id!r}")
    payload = await run_in_threadpool(store.qr_payload, venue_id)
    if payload is None:  # registered before signed codes: issue one now, and keep it
        keys: KeyRing = state.keys
        payload = keys.sign(venue_id, valid_from=venue.valid_from, valid_until=venue.valid_until)
        await run_in_threadpool(store.save_qr, venue_id, payload, keys.active_kid)
    return venue, payload


def on_roster(state: State, ward_code: str, roster_id: str) -> bool:
    return any(e.roster_id == roster_id for e in current_roster(state.records, (ward_code,)))


async def posters(state: State, ward_code: str, category: str | None) -> bytes:
    """The ward's posters as one PDF (truyvet/posters.py); 404 when the ward has no such venue."""
    keys: KeyRing = state.keys

    def sign(venue_id: str, valid_from: datetime | None, valid_until: datetime | None) -> str:
        payload = keys.sign(venue_id, valid_from=valid_from, valid_until=valid_until)
        state.venues.save_qr(venue_id, payload, keys.active_kid)
        return payload

    try:
        venues = await run_in_threadpool(poster_venues, state.records, ward_code, category, sign=sign)
    except DatabaseError as exc:
        raise unavailable(state, "clickhouse") from exc
    if not venues:
        raise ApiError(404, "not_found", "no registered venue in this ward and category")
    return await run_in_threadpool(lambda: posters_pdf(venues, created_at=datetime.now(UTC)))
