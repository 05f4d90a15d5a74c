"""Venues: registration and their printable codes (docs/api.md, "Ingest API"): thin over ingest/registration.py."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from ingest import registration
from ingest.models import QrKeyPublic, VenueCreate, VenuePublic
from ingest.poster import poster_png, qr_png, qr_svg
from ingest.qr import KeyRing
from truyvet.auth import Principal, Role
from truyvet.events import Category
from truyvet.web import require

router = APIRouter(tags=["venues"])

_VIEW_QR = require(Role.registrar, Role.device)


@router.post("/v1/venues", status_code=201, response_model=VenuePublic)
async def create_venue(body: VenueCreate, request: Request,
                       principal: Principal = Depends(require(Role.registrar))) -> VenuePublic:
    """Register a venue; returns its id and the signed text of its QR code."""
    return await registration.register(request.app.state, body, principal)


@router.get("/v1/venues/{venue_id}/qr.png", response_class=Response)
async def venue_qr_png(venue_id: str, request: Request, _: Principal = Depends(_VIEW_QR)) -> Response:
    """The venue's QR code as PNG (encodes exactly ``qr_payload``)."""
    payload = (await registration.signed(request.app.state, venue_id))[1]
    return Response(await run_in_threadpool(qr_png, payload), media_type="image/png")


@router.get("/v1/venues/{venue_id}/qr.svg", response_class=Response)
async def venue_qr_svg(venue_id: str, request: Request, _: Principal = Depends(_VIEW_QR)) -> Response:
    """The venue's QR code as SVG."""
    payload = (await registration.signed(request.app.state, venue_id))[1]
    return Response(await run_in_threadpool(qr_svg, payload), media_type="image/svg+xml")


@router.get("/v1/venues/{venue_id}/poster.png", response_class=Response)
async def venue_poster(venue_id: str, request: Request, _: Principal = Depends(_VIEW_QR)) -> Response:
    """A printable poster (15 x 21 cm at 300 dpi): name, category, ward, QR code, instructions."""
    venue, payload = await registration.signed(request.app.state, venue_id)
    ward = await run_in_threadpool(request.app.state.venues.ward_name, venue.ward_code)
    image = await run_in_threadpool(
        lambda: poster_png(payload, name=venue.name, category=venue.category.value, ward=ward))
    return Response(image, media_type="image/png")


@router.get("/v1/venues/posters.pdf", response_class=Response)
async def venue_posters(request: Request, ward_code: str = Query(..., min_length=1, max_length=32),
                        category: Category | None = Query(None),
                        _: Principal = Depends(require(Role.registrar))) -> Response:
    """Posters in bulk: one A4 page per registered venue of the ward (one category or all), fonts embedded."""
    body = await registration.posters(request.app.state, ward_code, category.value if category else None)
    name = f"ap-phich-{ward_code}{'-' + category.value if category else ''}.pdf"
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/v1/qr-keys", response_model=list[QrKeyPublic])
def qr_keys(request: Request, _: Principal = Depends(require(*Role))) -> list[QrKeyPublic]:
    """Public keys that verify venue codes (retired keys are left out), for offline checking."""
    keys: KeyRing = request.app.state.keys
    keys.maybe_reload()
    return [QrKeyPublic(key_id=kid, public_key=base64.urlsafe_b64encode(raw).decode().rstrip("="))
            for kid, raw in keys.public_keys().items()]
