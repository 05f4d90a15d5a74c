"""Ingest API: venue registration and scan intake (CONTRACT.md, "Ingest API")."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import ORJSONResponse
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, Field

from ingest.config import IngestSettings, get_settings
from ingest.exceptions import KafkaUnavailable
from ingest.producer import ScanProducer
from ingest.scans import Rejected, ScanValidator
from ingest.venues import VenueStore, new_venue_id, venue_message
from truyvet.auth import Principal, Role, TokenStore
from truyvet.events import Category, ScanEvent, Topics, UtcSecond, Venue
from truyvet.schema import connect
from truyvet.web import ApiError, install_error_handlers, install_health_and_metrics, require

logger = logging.getLogger(__name__)

SCANS = Counter("truyvet_ingest_scans_total", "Scans received by the ingest API", ["outcome"])
PRODUCE_SECONDS = Histogram("truyvet_ingest_produce_seconds", "Time until Kafka confirmed a request's scans")


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


class RejectedItem(BaseModel):
    index: int
    scan_id: str | None
    error: str


class ScanResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedItem]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: IngestSettings = get_settings()
    app.state.settings = settings
    app.state.tokens = TokenStore(connect(settings))
    app.state.venues = VenueStore(connect(settings))
    app.state.producer = ScanProducer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic(Topics.SCANS),
        timeout_seconds=settings.produce_timeout_seconds,
    )
    app.state.validator = ScanValidator(
        pseudonym_key=settings.pseudonym_key.get_secret_value().encode(),
        retention=timedelta(days=settings.retention_days),
        max_future=timedelta(seconds=settings.max_future_seconds),
        venue_lookup=app.state.venues.get,
        verify_venue_qr=_no_qr,
    )
    yield
    app.state.producer.close()


def _no_qr(_: str, __: datetime) -> str:
    raise ValueError("signed venue QR codes are not enabled on this server")


app = FastAPI(title="Truy Vết ingest API", version="1", lifespan=lifespan, default_response_class=ORJSONResponse)
install_error_handlers(app)
install_health_and_metrics(app, lambda: {"service": "ingest"})


@app.post("/v1/venues", status_code=201, response_model=VenuePublic, tags=["venues"])
def create_venue(body: VenueCreate, request: Request,
                 principal: Principal = Depends(require(Role.registrar))) -> VenuePublic:
    """Register a venue; returns its id and the signed text of its QR code."""
    store: VenueStore = request.app.state.venues
    settings: IngestSettings = request.app.state.settings
    if not store.ward_exists(body.ward_code):
        raise ApiError(422, "unknown_ward", f"ward_code {body.ward_code!r} is not a loaded ward or commune")
    if body.valid_from and body.valid_until and body.valid_until <= body.valid_from:
        raise ApiError(422, "invalid_request", "valid_until must be after valid_from")
    venue = Venue(venue_id=new_venue_id(), created_at=datetime.now(UTC), **body.model_dump())
    store.save(venue)
    request.app.state.producer.send_raw(settings.topic(Topics.VENUES), venue.venue_id.encode(), venue_message(venue))
    logger.info("venue %s registered by %s", venue.venue_id, principal.actor)
    return VenuePublic(**venue.model_dump(), qr_payload=venue.venue_id)


async def _intake(request: Request, items: list[Any], source: str) -> ScanResult:
    validator: ScanValidator = request.app.state.validator
    now = datetime.now(UTC).replace(microsecond=0)
    good: list[ScanEvent] = []
    rejected: list[RejectedItem] = []
    seen: set[str] = set()
    duplicates = 0
    for index, raw in enumerate(items):
        result = validator.validate(index, raw, now=now, source=source)
        if isinstance(result, Rejected):
            rejected.append(RejectedItem(index=result.index, scan_id=result.scan_id, error=result.error))
            continue
        key = str(result.scan_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        good.append(result)
    if good:
        with PRODUCE_SECONDS.time():
            try:
                await run_in_threadpool(request.app.state.producer.send, good)
            except KafkaUnavailable as exc:
                SCANS.labels("unavailable").inc(len(good))
                retry = str(request.app.state.settings.retry_after_seconds)
                raise ApiError(503, "kafka_unavailable", "scans not stored, retry later",
                               headers={"Retry-After": retry}) from exc
    SCANS.labels("accepted").inc(len(good))
    SCANS.labels("duplicate").inc(duplicates)
    SCANS.labels("rejected").inc(len(rejected))
    return ScanResult(accepted=len(good), duplicates=duplicates, rejected=rejected)


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc}") from exc


@app.post("/v1/scans", status_code=202, response_model=ScanResult, tags=["scans"])
async def post_scan(request: Request, _: Principal = Depends(require(Role.device))) -> ScanResult:
    """Accept one scan; answered only after Kafka has it."""
    body = await _json_body(request)
    return await _intake(request, [body], "http")


@app.post("/v1/scans/batch", status_code=202, response_model=ScanResult, tags=["scans"])
async def post_scan_batch(request: Request, _: Principal = Depends(require(Role.device))) -> ScanResult:
    """Accept up to 10,000 scans (a JSON array, or {"scans": [...]}); bad items are listed, never fatal."""
    body = await _json_body(request)
    items = body.get("scans") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "body must be a JSON array of scans or {\"scans\": [...]}")
    limit = request.app.state.settings.max_batch
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"at most {limit} scans per batch, got {len(items)}")
    return await _intake(request, items, "batch")
