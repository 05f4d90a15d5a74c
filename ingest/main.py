"""The ingest API application (``uvicorn ingest.main:app``): venue registration and scan intake."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from ingest.config import IngestSettings, get_settings
from ingest.persons import PersonDetailsStore
from ingest.producer import ScanProducer
from ingest.qr import KeyRing, QrVerifier
from ingest.records import SharedDatabase
from ingest.routes import pages, people, scans, venues
from ingest.scans import ScanIn, ScanValidator
from ingest.venues import VenueStore
from truyvet import openapi
from truyvet.auth import TokenStore
from truyvet.events import Topics
from truyvet.guard import RequestGuard
from truyvet.kafka_clients import security_options
from truyvet.ratelimit import TokenBuckets
from truyvet.redact import install_log_scrubber
from truyvet.schema import connect
from truyvet.web import install_error_handlers, install_health_and_metrics

logger = logging.getLogger(__name__)
install_log_scrubber()  # no ID number or card text in any log record of the service (issue 13)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: IngestSettings = get_settings()
    app.state.settings = settings
    app.state.tokens = TokenStore(connect(settings), citizens=True)  # citizens declare for themselves
    app.state.venues = VenueStore(connect(settings))
    app.state.persons = PersonDetailsStore(connect(settings))
    app.state.records = SharedDatabase(connect(settings))  # issue 15: cards, declarations, posters
    app.state.keys = KeyRing(settings.keys_dir, reload_seconds=settings.qr_key_reload_seconds)
    app.state.keys.load()
    app.state.buckets = TokenBuckets(rate=settings.rate_limit_scans_per_second,
                                     burst=settings.rate_limit_burst)
    app.state.citizen_declarations = TokenBuckets(rate=settings.citizen_declarations_per_day / 86400,
                                                  burst=settings.citizen_declarations_per_day)
    app.state.producer = ScanProducer(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic(Topics.SCANS),
        timeout_seconds=settings.produce_timeout_seconds,
        kafka_timeout_seconds=settings.kafka_request_timeout_seconds,
        recent_capacity=settings.recent_scan_ids,
        client_options=security_options(settings),
    )
    await app.state.producer.start()
    app.state.validator = ScanValidator(
        pseudonym_key=settings.pseudonym_key_bytes(),
        retention=timedelta(days=settings.retention_days),
        max_future=timedelta(seconds=settings.max_future_seconds),
        venue_lookup=app.state.venues.get,
        verify_venue_qr=QrVerifier(app.state.keys),
        verify_person_card=app.state.keys.verify_card,
    )
    yield
    await app.state.producer.stop()


app = FastAPI(title="Truy Vết ingest API", version="1", lifespan=lifespan)
install_error_handlers(app)
openapi.install(app, models=[ScanIn])
app.add_middleware(RequestGuard)  # body cap, authentication before the body (issue 13)
install_health_and_metrics(app, lambda: {"service": "ingest", "kafka": _kafka_state()})


def _kafka_state() -> str:
    producer = getattr(app.state, "producer", None)
    return "connected" if producer is not None and producer.connected else "connecting"
app.include_router(venues.router)
app.include_router(scans.router)
app.include_router(people.router)  # issue 15
app.include_router(pages.router)  # issue 15
