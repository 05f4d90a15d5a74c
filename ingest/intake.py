"""Scan intake: rate limit, per-item validation, personal details of CCCD cards, Kafka; the answer.

The routes (ingest/routes/scans.py) only read the body; a scan is acknowledged only after Kafka has it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter, Histogram
from starlette.datastructures import State

from ingest.exceptions import KafkaUnavailable
from ingest.producer import Record
from ingest.pseudonym import CccdCard
from ingest.scans import Rejected, ScanValidator
from truyvet.auth import Principal
from truyvet.ratelimit import retry_after_header
from truyvet.schema.db import DatabaseError
from truyvet.web import ApiError

logger = logging.getLogger(__name__)

SCANS = Counter("truyvet_ingest_scans_total", "Scans received by the ingest API", ["outcome"])
PRODUCE_SECONDS = Histogram("truyvet_ingest_produce_seconds", "Time until Kafka confirmed a request's scans")
RATE_LIMITED = Counter("truyvet_ingest_rate_limited_total", "Scan requests refused by the per-token limit")


def unavailable(state: State, what: str) -> ApiError:
    """503 with Retry-After: ``what`` (kafka, clickhouse) did not confirm; nothing was stored."""
    retry = str(state.settings.retry_after_seconds)
    return ApiError(503, f"{what}_unavailable", f"{what} did not confirm; nothing was stored, retry later",
                    headers={"Retry-After": retry})


async def intake(state: State, items: list[Any], source: str, principal: Principal) -> dict[str, Any]:
    """Validate and store ``items``; the answer ``{accepted, duplicates, rejected}``."""
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
            raise unavailable(state, "clickhouse") from exc
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
            await run_in_threadpool(lambda: state.persons.save(cards, reported_by=principal.actor))
        except DatabaseError as exc:
            logger.warning("person details not stored (%d cards): ClickHouse error code %s",
                           len(cards), exc.context.get("code"))
            raise unavailable(state, "clickhouse") from exc
    already = 0  # confirmed by Kafka in an earlier request: a resend, not written again
    if good:
        with PRODUCE_SECONDS.time():
            try:
                already = await state.producer.send(good)
            except KafkaUnavailable as exc:
                SCANS.labels("unavailable").inc(len(good))
                raise unavailable(state, "kafka") from exc
    duplicates += already
    accepted = len(good) - already
    SCANS.labels("accepted").inc(accepted)
    SCANS.labels("duplicate").inc(duplicates)
    SCANS.labels("rejected").inc(len(rejected))
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
