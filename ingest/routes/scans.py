"""Scan intake (docs/api.md, "Ingest API"): thin over ingest/intake.py."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from ingest.intake import intake
from ingest.models import ScanResult
from truyvet.auth import Principal, Role
from truyvet.web import ApiError, require

router = APIRouter(tags=["scans"])

# The bodies are read by the routes themselves (a bad item is rejected alone, never the request), so
# their shape is documented here (ScanIn is added to the document's schemas by truyvet.openapi).
_SCAN = {"$ref": "#/components/schemas/ScanIn"}
_ONE = {"requestBody": {"required": True, "content": {"application/json": {"schema": _SCAN}}}}
_BATCH = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"anyOf": [
    {"type": "array", "items": _SCAN, "maxItems": 10_000},
    {"type": "object", "properties": {"scans": {"type": "array", "items": _SCAN, "maxItems": 10_000}},
     "required": ["scans"]}]}}}}}


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc}") from exc


def _answer(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=202, media_type="application/json")


@router.post("/v1/scans", status_code=202, response_model=ScanResult, openapi_extra=_ONE)
async def post_scan(request: Request, principal: Principal = Depends(require(Role.device))) -> Response:
    """Accept one scan; answered only after Kafka has it."""
    body = await _json_body(request)
    return _answer(await intake(request.app.state, [body], "http", principal))


@router.post("/v1/scans/batch", status_code=202, response_model=ScanResult, openapi_extra=_BATCH)
async def post_scan_batch(request: Request, principal: Principal = Depends(require(Role.device))) -> Response:
    """Accept up to 10,000 scans (a JSON array, or {"scans": [...]}); bad items are listed, never fatal."""
    body = await _json_body(request)
    items = body.get("scans") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "body must be a JSON array of scans or {\"scans\": [...]}")
    limit = request.app.state.settings.max_batch
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"at most {limit} scans per batch, got {len(items)}")
    return _answer(await intake(request.app.state, items, "batch", principal))
