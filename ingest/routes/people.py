"""Printed personal cards and health declarations (docs/api.md, issue 15): thin over ingest/cards.py and
ingest/declarations.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ingest import cards
from ingest.declarations import SYMPTOMS, DeclarationAccepted, DeclarationIn, declare
from ingest.intake import unavailable
from truyvet.auth import Principal, Role
from truyvet.schema.db import DatabaseError
from truyvet.web import ApiError, require

router = APIRouter(tags=["people"])


class CardCreate(BaseModel):
    residence_ward_code: str = Field(min_length=1, max_length=32)
    full_name: str = Field("", max_length=200)
    phone: str = Field("", max_length=32, pattern=r"^[0-9+ ().-]*$")


class CardPublic(BaseModel):
    person_id: str
    card_payload: str


class Symptom(BaseModel):
    code: str
    label: str


@router.post("/v1/persons/cards", status_code=201, response_model=CardPublic)
async def create_card(body: CardCreate, request: Request,
                      principal: Principal = Depends(require(Role.health_center, Role.registrar))) -> CardPublic:
    """Issue a printed personal card: a new pseudonymous person id and its signed QR text."""
    state = request.app.state
    cards.may_handle(principal, body.residence_ward_code)
    if not await run_in_threadpool(state.venues.ward_exists, body.residence_ward_code):
        raise ApiError(422, "unknown_ward", f"ward {body.residence_ward_code!r} is not a loaded ward or commune")
    state.keys.maybe_reload()
    person_id = cards.new_person_id()
    kid = state.keys.active_kid
    payload = state.keys.sign_card(person_id)
    try:
        await run_in_threadpool(lambda: cards.store_card(
            state.records, person_id=person_id, ward_code=body.residence_ward_code, full_name=body.full_name.strip(),
            phone=body.phone.strip(), payload=payload, key_id=kid, issued_by=principal.actor))
    except DatabaseError as exc:
        raise unavailable(state, "clickhouse") from exc
    return CardPublic(person_id=person_id, card_payload=payload)


@router.get("/v1/persons/cards/{person_id}.png", response_class=Response)
async def card_image(request: Request, person_id: str = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$"),
                     principal: Principal = Depends(require(Role.health_center, Role.registrar))) -> Response:
    """The printable card (10 x 6.5 cm at 300 dpi): QR code, name, ward; each print is audited."""
    state = request.app.state
    found = await run_in_threadpool(cards.load_card, state.records, person_id)
    if found is None:
        raise ApiError(404, "not_found", "no card issued for this person")
    cards.may_handle(principal, found.residence_ward_code)
    ward = await run_in_threadpool(state.venues.ward_name, found.residence_ward_code)
    await run_in_threadpool(cards.audit_print, state.records, principal, person_id)
    image = await run_in_threadpool(lambda: cards.card_png(found.card_payload, full_name=found.full_name,
                                                           ward_name=ward))
    return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/v1/declarations", status_code=202, response_model=DeclarationAccepted)
async def post_declaration(body: DeclarationIn, request: Request,
                           principal: Principal = Depends(require(Role.device, Role.citizen))) -> DeclarationAccepted:
    """A health declaration (Decision 2666): symptoms, contact with a case, travel; may raise an alert.
    A venue's device declares for the person it names; a citizen (their app's secret) for themselves."""
    return await declare(request.app.state, body, principal)


@router.get("/v1/declarations/symptoms", response_model=list[Symptom])
def symptoms(_: Principal = Depends(require(*Role))) -> list[Symptom]:
    """The fixed symptom list of the declaration form (codes and Vietnamese labels)."""
    return [Symptom(code=c, label=label) for c, label in SYMPTOMS.items()]
