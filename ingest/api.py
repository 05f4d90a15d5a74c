"""Ingest API: venue registration and scan intake (docs/api.md, "Ingest API")."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, Field

from ingest.config import IngestSettings, get_settings
from ingest.exceptions import KafkaUnavailable
from ingest.persons import PersonDetailsStore
from ingest.poster import poster_png, qr_png, qr_svg
from ingest.producer import Record, ScanProducer
from ingest.pseudonym import CccdCard
from ingest.qr import KeyRing, QrVerifier
from ingest.ratelimit import TokenBuckets, retry_after_header
from ingest.scans import Rejected, ScanValidator
from ingest.venues import VenueStore, new_venue_id, venue_message
from truyvet.auth import Principal, Role, TokenStore
from truyvet.events import Category, Topics, UtcSecond, Venue
from truyvet.schema import connect
from truyvet.schema.db import DatabaseError
from truyvet.web import ApiError, install_error_handlers, install_health_and_metrics, require

logger = logging.getLogger(__name__)

SCANS = Counter("truyvet_ingest_scans_total", "Scans received by the ingest API", ["outcome"])
PRODUCE_SECONDS = Histogram("truyvet_ingest_produce_seconds", "Time until Kafka confirmed a request's scans")
RATE_LIMITED = Counter("truyvet_ingest_rate_limited_total", "Scan requests refused by the per-token limit")


class VenueCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    category: Category
    ward_code: str = Field(min_length=1, max_length=32)
    address: str = Field("", max_length=500)
    phone: str = Field("", max_length=32)
    default_stay_minutes: int | None = Field(None, ge=1, le=24 * 60)
    valid_from: UtcSecond | None = None
    valid_until: UtcSecond | None = None


class VenuePublic(BaseModel):
    venue_id: str
    name: str
    category: Category
    ward_code: str
    address: str
    default_stay_minutes: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    qr_payload: str
    key_id: str


class RejectedItem(BaseModel):
    index: int
    scan_id: str | None
    error: str


class ScanResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]


class QrKeyPublic(BaseModel):
    key_id: str
    algorithm: str = "Ed25519"
    public_key: str  # raw 32 bytes, base64url


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: IngestSettings = get_settings()
    app.state.settings = settings
    app.state.tokens = TokenStore(connect(settings))
    app.state.venues = VenueStore(connect(settings))
    app.state.persons = PersonDetailsStore(connect(settings))
    app.state.keys = KeyRing(settings.keys_dir, reload_seconds=settings.qr_key_reload_seconds)
    app.state.keys.load()
    app.state.buckets = TokenBuckets(rate=settings.rate_limit_scans_per_second,
                                     burst=settings.rate_limit_burst)
    app.state.producer = ScanProducer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic(Topics.SCANS),
        timeout_seconds=settings.produce_timeout_seconds,
        kafka_timeout_seconds=settings.kafka_request_timeout_seconds,
        recent_capacity=settings.recent_scan_ids,
    )
    await app.state.producer.start()
    app.state.validator = ScanValidator(
        pseudonym_key=settings.pseudonym_key.get_secret_value().encode(),
        retention=timedelta(days=settings.retention_days),
        max_future=timedelta(seconds=settings.max_future_seconds),
        venue_lookup=app.state.venues.get,
        verify_venue_qr=QrVerifier(app.state.keys),
    )
    yield
    await app.state.producer.stop()


app = FastAPI(title="Truy Vết ingest API", version="1", lifespan=lifespan)
install_error_handlers(app)
install_health_and_metrics(app, lambda: {"service": "ingest", "kafka": _kafka_state()})


def _kafka_state() -> str:
    producer = getattr(app.state, "producer", None)
    return "connected" if producer is not None and producer.connected else "connecting"


def _unavailable(request: Request, what: str) -> ApiError:
    retry = str(request.app.state.settings.retry_after_seconds)
    return ApiError(503, f"{what}_unavailable", f"{what} did not confirm; nothing was stored, retry later",
                    headers={"Retry-After": retry})


# -- venues ----------------------------------------------------------------------------------------
@app.post("/v1/venues", status_code=201, response_model=VenuePublic, tags=["venues"])
async def create_venue(body: VenueCreate, request: Request,
                       principal: Principal = Depends(require(Role.registrar))) -> VenuePublic:
    """Register a venue; returns its id and the signed text of its QR code."""
    store: VenueStore = request.app.state.venues
    keys: KeyRing = request.app.state.keys
    settings: IngestSettings = request.app.state.settings
    if not await run_in_threadpool(store.ward_exists, body.ward_code):
        raise ApiError(422, "unknown_ward", f"ward_code {body.ward_code!r} is not a loaded ward or commune")
    if body.valid_from and body.valid_until and body.valid_until <= body.valid_from:
        raise ApiError(422, "invalid_request", "valid_until must be after valid_from")
    venue = Venue(venue_id=new_venue_id(), created_at=datetime.now(UTC), **body.model_dump())
    keys.maybe_reload()
    kid = keys.active_kid
    payload = keys.sign(venue.venue_id, valid_from=venue.valid_from, valid_until=venue.valid_until)

    def record() -> None:
        store.save(venue)
        store.save_qr(venue.venue_id, payload, kid)

    try:
        await run_in_threadpool(record)
        await request.app.state.producer.send_raw(settings.topic(Topics.VENUES), venue.venue_id.encode(),
                                                  venue_message(venue))
    except DatabaseError as exc:
        logger.warning("venue not stored: %s", exc)
        raise _unavailable(request, "clickhouse") from exc
    except KafkaUnavailable as exc:
        raise _unavailable(request, "kafka") from exc
    logger.info("venue %s registered by %s (QR key %s)", venue.venue_id, principal.actor, kid)
    return VenuePublic(**venue.model_dump(), qr_payload=payload, key_id=kid)


async def _venue_payload(request: Request, venue_id: str) -> tuple[Venue, str]:
    store: VenueStore = request.app.state.venues
    venue = await run_in_threadpool(store.get, venue_id)
    if venue is None:
        raise ApiError(404, "not_found", f"unknown venue {venue_id!r}")
    payload = await run_in_threadpool(store.qr_payload, venue_id)
    if payload is None:  # registered before signed codes: issue one now, and keep it
        keys: KeyRing = request.app.state.keys
        payload = keys.sign(venue_id, valid_from=venue.valid_from, valid_until=venue.valid_until)
        await run_in_threadpool(store.save_qr, venue_id, payload, keys.active_kid)
    return venue, payload


_VIEW_QR = require(Role.registrar, Role.device)


@app.get("/v1/venues/{venue_id}/qr.png", tags=["venues"], response_class=Response)
async def venue_qr_png(venue_id: str, request: Request, _: Principal = Depends(_VIEW_QR)) -> Response:
    """The venue's QR code as PNG (encodes exactly ``qr_payload``)."""
    payload = (await _venue_payload(request, venue_id))[1]
    return Response(await run_in_threadpool(qr_png, payload), media_type="image/png")


@app.get("/v1/venues/{venue_id}/qr.svg", tags=["venues"], response_class=Response)
async def venue_qr_svg(venue_id: str, request: Request, _: Principal = Depends(_VIEW_QR)) -> Response:
    """The venue's QR code as SVG."""
    payload = (await _venue_payload(request, venue_id))[1]
    return Response(await run_in_threadpool(qr_svg, payload), media_type="image/svg+xml")


@app.get("/v1/venues/{venue_id}/poster.png", tags=["venues"], response_class=Response)
async def venue_poster(venue_id: str, request: Request, _: Principal = Depends(_VIEW_QR)) -> Response:
    """A printable poster (15 x 21 cm at 300 dpi): name, category, ward, QR code, instructions."""
    venue, payload = await _venue_payload(request, venue_id)
    ward = await run_in_threadpool(request.app.state.venues.ward_name, venue.ward_code)
    image = await run_in_threadpool(
        lambda: poster_png(payload, name=venue.name, category=venue.category.value, ward=ward))
    return Response(image, media_type="image/png")


@app.get("/v1/qr-keys", response_model=list[QrKeyPublic], tags=["venues"])
def qr_keys(request: Request, _: Principal = Depends(require(*Role))) -> list[QrKeyPublic]:
    """Public keys that verify venue codes (retired keys are left out), for offline checking."""
    keys: KeyRing = request.app.state.keys
    keys.maybe_reload()
    return [QrKeyPublic(key_id=kid, public_key=base64.urlsafe_b64encode(raw).decode().rstrip("="))
            for kid, raw in keys.public_keys().items()]


# -- scans -----------------------------------------------------------------------------------------
async def _intake(request: Request, items: list[Any], source: str, principal: Principal) -> Response:
    state = request.app.state
    wait = state.buckets.take(principal.token_prefix, max(1, len(items)))
    if wait:
        RATE_LIMITED.inc()
        raise ApiError(429, "rate_limited", f"too many scans for this token; retry in {wait:.1f}s",
                       headers={"Retry-After": retry_after_header(wait)})
    validator: ScanValidator = state.validator
    now = datetime.now(UTC).replace(microsecond=0)
    good: list[Record] = []
    cards: list[tuple[str, CccdCard]] = []
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = 0
    for index, raw in enumerate(items):
        try:
            result = validator.validate(index, raw, now=now, source=source)
        except DatabaseError as exc:  # a venue not cached yet could not be looked up
            logger.warning("venue lookup failed: ClickHouse error code %s", exc.context.get("code"))
            raise _unavailable(request, "clickhouse") from exc
        if isinstance(result, Rejected):
            rejected.append({"index": result.index, "scan_id": result.scan_id, "error": result.error})
            continue
        if result.scan_id in seen:
            duplicates += 1
            continue
        seen.add(result.scan_id)
        good.append((result.scan_id, result.person_id, result.value))
        if result.card is not None:
            cards.append((result.person_id, result.card))
    if cards:
        try:
            await run_in_threadpool(state.persons.save, cards)
        except DatabaseError as exc:
            logger.warning("person details not stored (%d cards): ClickHouse error code %s",
                           len(cards), exc.context.get("code"))
            raise _unavailable(request, "clickhouse") from exc
    already = 0  # confirmed by Kafka in an earlier request: a resend, not written again
    if good:
        with PRODUCE_SECONDS.time():
            try:
                already = await state.producer.send(good)
            except KafkaUnavailable as exc:
                SCANS.labels("unavailable").inc(len(good))
                raise _unavailable(request, "kafka") from exc
    duplicates += already
    accepted = len(good) - already
    SCANS.labels("accepted").inc(accepted)
    SCANS.labels("duplicate").inc(duplicates)
    SCANS.labels("rejected").inc(len(rejected))
    body = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc}") from exc


@app.post("/v1/scans", status_code=202, response_model=ScanResult, tags=["scans"])
async def post_scan(request: Request, principal: Principal = Depends(require(Role.device))) -> Response:
    """Accept one scan; answered only after Kafka has it."""
    body = await _json_body(request)
    return await _intake(request, [body], "http", principal)


@app.post("/v1/scans/batch", status_code=202, response_model=ScanResult, tags=["scans"])
async def post_scan_batch(request: Request, principal: Principal = Depends(require(Role.device))) -> Response:
    """Accept up to 10,000 scans (a JSON array, or {"scans": [...]}); bad items are listed, never fatal."""
    body = await _json_body(request)
    items = body.get("scans") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "body must be a JSON array of scans or {\"scans\": [...]}")
    limit = request.app.state.settings.max_batch
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"at most {limit} scans per batch, got {len(items)}")
    return await _intake(request, items, "batch", principal)
