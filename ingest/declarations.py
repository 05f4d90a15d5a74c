"""Health declarations (Decision 2666/QĐ-BYT; docs/api.md, "Health declarations").

A venue's device (or a health worker's) sends one for a person identified like a scan (``person_id``,
``cccd_qr`` turned into the pseudonym at once, or a printed card's ``person_qr``); a citizen sends their
own with their app's secret (``POST /v1/citizens``), naming no one else (at most
``citizen_declarations_per_day`` a day each). Stored pseudonymously in ``declarations`` (no name, no ID
number; dropped by day after the retention period, like visits). A declaration with a symptom or
contact with a case raises one alert of kind ``declaration`` to the health center of the person's
residence ward (known from a CCCD card or a printed card), else of the ward the declaration gives
(``ward_code``: where the person lives now), else of the venue's ward; one that needs a call with none
of these is refused (422), never sent to no one. The alert is produced to the ``alerts`` topic, so the
dispatcher delivers it to the ward's webhook and records it for ``GET /v1/alerts`` exactly like a
contact alert.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import State

from ingest.exceptions import KafkaUnavailable
from ingest.intake import unavailable
from ingest.pseudonym import CccdError, parse_cccd, pseudonym
from truyvet.alerts import residence_wards
from truyvet.auth import Principal, Role
from truyvet.events import Alert, AlertKind, PersonId, Topics, UtcSecond, VenueId
from truyvet.ratelimit import retry_after_header
from truyvet.schema.db import DatabaseError
from truyvet.web import ApiError

# The symptom list of the national declaration form, as codes with their Vietnamese labels.
SYMPTOMS = {
    "fever": "Sốt",
    "cough": "Ho",
    "shortness_of_breath": "Khó thở",
    "sore_throat": "Đau họng",
    "pneumonia": "Viêm phổi",
    "fatigue": "Mệt mỏi, đau người",
    "loss_of_taste_smell": "Mất vị giác hoặc khứu giác",
    "diarrhea": "Tiêu chảy",
    "runny_nose": "Sổ mũi, nghẹt mũi",
}


DECLARATIONS = Counter("truyvet_ingest_declarations_total", "Health declarations stored", ["alerted"])
CITIZENS_LIMITED = Counter("truyvet_ingest_citizen_declarations_limited_total",
                           "Citizens' declarations refused by the per-citizen daily limit")


class DeclarationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    declaration_id: uuid.UUID
    declared_at: UtcSecond
    person_id: PersonId | None = None
    cccd_qr: str | None = Field(None, max_length=2000)
    person_qr: str | None = Field(None, max_length=1000)
    venue_id: VenueId | None = None
    ward_code: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$",
                                  description="the ward or commune where the person lives now: where the alert "
                                              "goes when no card told the residence ward")
    symptoms: list[str] = Field(default_factory=list, max_length=len(SYMPTOMS))
    other_symptoms: str = Field("", max_length=500, description="free text beside the fixed list")
    contact_with_case: bool
    travel: str = Field("", max_length=500, description="places travelled to in the last 21 days")

    @model_validator(mode="after")
    def _checks(self) -> DeclarationIn:
        if sum(v is not None for v in (self.person_id, self.cccd_qr, self.person_qr)) > 1:
            raise ValueError("give exactly one of person_id, cccd_qr or person_qr")
        unknown = [s for s in self.symptoms if s not in SYMPTOMS]
        if unknown:
            raise ValueError(f"unknown symptoms {unknown[:3]}; known: {sorted(SYMPTOMS)}")
        return self

    @property
    def needs_call(self) -> bool:
        return bool(self.symptoms or self.other_symptoms.strip() or self.contact_with_case)


class DeclarationAccepted(BaseModel):
    declaration_id: str
    person_id: str
    ward_code: str
    alerted: bool


COLUMNS = ["declaration_id", "declared_at", "person_id", "ward_code", "venue_id", "symptoms", "other_symptoms",
           "contact_with_case", "travel", "source", "received_at"]


def alert_id(declaration_id: str) -> str:
    return "d" + hashlib.sha256(declaration_id.encode()).hexdigest()[:23]


def _residence_ward(state: State, person_id: str) -> str:
    return residence_wards(state.records, [person_id]).get(person_id, "")


def _own(state: State, body: DeclarationIn, principal: Principal) -> str:
    """A citizen declares for themselves only (their person id, or none given), within the daily limit."""
    if body.cccd_qr is not None or body.person_qr is not None or body.person_id not in (None, principal.actor):
        raise ApiError(403, "forbidden", "a citizen declares for themselves only: give no person_id, cccd_qr "
                                         "or person_qr, or your own person_id")
    wait = state.citizen_declarations.take(principal.actor, 1)
    if wait:
        CITIZENS_LIMITED.inc()
        raise ApiError(429, "rate_limited", f"too many declarations today; retry in {wait:.0f}s",
                       headers={"Retry-After": retry_after_header(wait)})
    return principal.actor


async def declare(state: State, body: DeclarationIn, principal: Principal) -> DeclarationAccepted:
    """Store the declaration and, if it needs a call, raise its alert; answered once both are durable."""
    now = datetime.now(UTC).replace(microsecond=0)
    if body.declared_at > now + timedelta(seconds=state.settings.max_future_seconds):
        raise ApiError(422, "invalid_request", "declared_at: more than 5 minutes in the future")
    if body.declared_at < now - timedelta(days=state.settings.retention_days):
        raise ApiError(422, "invalid_request", "declared_at: older than the retention period")
    card = None
    if principal.role == Role.citizen:
        person = _own(state, body, principal)
    elif body.person_id is None and body.cccd_qr is None and body.person_qr is None:
        raise ApiError(422, "invalid_request", "give exactly one of person_id, cccd_qr or person_qr")
    elif body.cccd_qr is not None:
        try:
            card = parse_cccd(body.cccd_qr)
        except CccdError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        person = pseudonym(state.settings.pseudonym_key.get_secret_value().encode(), card.id_number)
    elif body.person_qr is not None:
        try:
            person = state.keys.verify_card(body.person_qr)
        except ValueError as exc:
            raise ApiError(422, "invalid_card", f"person_qr: {exc}") from None
    else:
        person = body.person_id or ""
    venue = None
    if body.venue_id is not None:
        venue = await run_in_threadpool(state.venues.get, body.venue_id)
        if venue is None:
            raise ApiError(422, "unknown_venue", "venue_id: unknown venue (not registered)")
    try:
        if body.ward_code is not None and not await run_in_threadpool(state.venues.ward_exists, body.ward_code):
            raise ApiError(422, "unknown_ward", f"ward_code: {body.ward_code!r} is not a loaded ward or commune")
        if card is not None:
            await run_in_threadpool(state.persons.save, [(person, card)])
        ward = (await run_in_threadpool(_residence_ward, state, person) or body.ward_code
                or (venue.ward_code if venue else ""))
        if not ward and body.needs_call:
            raise ApiError(422, "ward_unknown", "this declaration needs a call but no ward is known for the person: "
                                                "give ward_code (where they live) or venue_id")
        row = (str(body.declaration_id), body.declared_at, person, ward, body.venue_id or "",
               sorted(set(body.symptoms)), body.other_symptoms.strip(), int(body.contact_with_case),
               body.travel.strip(), principal.role.value, now)
        await run_in_threadpool(state.records.insert, "declarations", COLUMNS, [row])
    except DatabaseError as exc:
        raise unavailable(state, "clickhouse") from exc
    if body.needs_call:
        alert = Alert(alert_id=alert_id(str(body.declaration_id)), case_id="", person_id=person, generation=0,
                      ward_code=ward, venue_id=body.venue_id or "", created_at=now, kind=AlertKind.declaration)
        try:
            await state.producer.send_raw(state.settings.topic(Topics.ALERTS), alert.alert_id.encode(),
                                          alert.model_dump_json().encode())
        except KafkaUnavailable as exc:
            raise unavailable(state, "kafka") from exc
    DECLARATIONS.labels("yes" if body.needs_call else "no").inc()
    return DeclarationAccepted(declaration_id=str(body.declaration_id), person_id=person, ward_code=ward,
                               alerted=body.needs_call)
