"""The OpenAPI document as a service really answers (both APIs): the contract's error JSON on every
/v1 operation.

FastAPI documents its own validation-error shape for 422; our handlers (truyvet/web.py) answer every
error, 422 included, as ``{"error": {"code", "message"}}``; every /v1 route needs a bearer token (401)
with the right role or ward (403), may be throttled (429) or find the database away (503), and a body
may be too large (413, truyvet/guard.py). This fills those in for every router, so clients and
schemathesis see what is actually sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from truyvet.web import ErrorOut

ERRORS = {"401": "Missing or unknown token", "403": "Role or ward not allowed", "422": "Invalid request",
          "429": "Too many requests (see Retry-After)", "503": "A store is unavailable (see Retry-After)"}


def install(app: FastAPI, models: Sequence[type[BaseModel]] = ()) -> None:
    """:param models: schemas a route names in its ``openapi_extra`` (a body it reads itself) to add."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        extra: list[type[BaseModel]] = [ErrorOut, *models]
        for model in extra:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas.setdefault(model.__name__, schema)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for path, operations in spec.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                wanted = dict(ERRORS) if path.startswith("/v1/") else {}
                if "{" in path:
                    wanted["404"] = "Not found"
                if "422" in responses or op.get("parameters") or op.get("requestBody"):
                    wanted.setdefault("422", ERRORS["422"])
                if op.get("requestBody"):
                    wanted["400"] = "Body is not JSON"
                    wanted["413"] = "Body too large"
                for status, text in wanted.items():
                    responses[status] = {"description": responses.get(status, {}).get("description", text),
                                         "content": error}
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = build  # type: ignore[method-assign]
