"""The venue's own pages served by ingest (issue 15): the scanning page a venue's phone or tablet opens
with its device token, and the registrar's page that registers a venue and prints its poster.

Static shells (``ingest/web``) with no data in them; the token typed in is kept by the browser
(localStorage for the device, sessionStorage for a registrar) and sent as ``Authorization: Bearer``.
The QR decoder is jsQR, vendored from npm with its licence (``ingest/web/static/jsQR.README.txt``);
nothing is loaded from outside at run time.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

from truyvet.web import static_files, static_response

router = APIRouter(include_in_schema=False)

WEB = Path(__file__).resolve().parent.parent / "web"
PAGES = {"scanner": "scanner.html", "registrar": "registrar.html"}
STATIC = static_files(WEB / "static")
_PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                 "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                 "script-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; "
                 "frame-ancestors 'none'"}


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    return static_response(STATIC, name, {"Cache-Control": "no-cache"})


def _page(name: str) -> FileResponse:
    return FileResponse(WEB / "pages" / PAGES[name], media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/scanner/")
def scanner_page() -> FileResponse:
    return _page("scanner")


@router.get("/registrar/")
def registrar_page() -> FileResponse:
    return _page("registrar")


@router.get("/scanner")
@router.get("/registrar")
def without_slash(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url.path + "/")
