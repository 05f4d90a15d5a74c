"""Citizens of the app (docs/api.md, "Follow-up and people"): thin over trace_api/citizens.py and phones.py."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import AfterValidator, BaseModel

from ingest.ratelimit import TokenBuckets, retry_after_header
from trace_api import citizens, phones
from trace_api.deps import get_db
from trace_api.models import error_responses
from truyvet.schema.db import Database
from truyvet.web import ApiError, bearer_token

router = APIRouter(tags=["citizens"], responses=error_responses(401, 422))
RATE_LIMITED = Counter("truyvet_citizens_rate_limited_total", "Citizen registrations refused by the rate limit")
_PHONE = re.compile(r"^\+?[0-9]{8,15}$")


def _phone(value: str) -> str:
    digits = re.sub(r"[\s.()-]", "", value)
    if not _PHONE.fullmatch(digits):
        raise ValueError("a phone number: 8-15 digits, optionally starting with +")
    return digits


class CitizenCreated(BaseModel):
    person_id: str
    secret: str


class CaseVisit(BaseModel):
    t_in: str
    t_out: str


class ExposureItem(BaseModel):
    venue_name: str
    ward_name: str
    date: str
    case_visit: CaseVisit


class MyExposure(BaseModel):
    status: Literal["none", "f1", "f2"]
    exposures: list[ExposureItem]
    advice: str


class ContactIn(BaseModel):
    phone: Annotated[str, AfterValidator(_phone)]
    consent: Literal[True]


class ContactOut(BaseModel):
    phone: str
    consent: bool


def _buckets(request: Request) -> TokenBuckets:
    state = request.app.state
    if getattr(state, "citizen_buckets", None) is None:
        s = state.settings
        state.citizen_buckets = TokenBuckets(rate=s.citizens_per_second, burst=s.citizens_burst)
    return state.citizen_buckets  # type: ignore[no-any-return]


def citizen(db: Database = Depends(get_db), secret: str = Depends(bearer_token)) -> str:
    """The calling citizen's person_id (``Authorization: Bearer <secret>``)."""
    return citizens.person_of(db, secret)


@router.post("/v1/citizens", status_code=201, response_model=CitizenCreated, responses=error_responses(429))
def create_citizen(request: Request, db: Database = Depends(get_db)) -> CitizenCreated:
    """A new pseudonymous id for the app and the secret it keeps (no token; rate-limited per address)."""
    wait = _buckets(request).take(request.client.host if request.client else "", 1)
    if wait:
        RATE_LIMITED.inc()
        raise ApiError(429, "rate_limited", f"too many registrations; retry in {wait:.0f}s",
                       headers={"Retry-After": retry_after_header(wait)})
    person_id, secret = citizens.create(db)
    return CitizenCreated(person_id=person_id, secret=secret)


@router.get("/v1/me/exposure", response_model=MyExposure)
def my_exposure(request: Request, person_id: str = Depends(citizen), db: Database = Depends(get_db)) -> MyExposure:
    """Whether I was a contact (f1/f2) of a case, where and when (no one else's id, never who the case is)."""
    return MyExposure.model_validate(citizens.exposure(db, request.app.state.settings, person_id))


@router.put("/v1/me/contact", response_model=ContactOut)
def set_contact(body: ContactIn, person_id: str = Depends(citizen), db: Database = Depends(get_db)) -> ContactOut:
    """Give a phone, with consent, for my ward's health station to call me if I am a contact."""
    phones.set_phone(db, person_id, body.phone)
    return ContactOut(phone=body.phone, consent=True)


@router.delete("/v1/me/contact", status_code=204)
def delete_contact(person_id: str = Depends(citizen), db: Database = Depends(get_db)) -> Response:
    """Take my phone back: no one can read it from now on."""
    phones.delete_phone(db, person_id)
    return Response(status_code=204)
