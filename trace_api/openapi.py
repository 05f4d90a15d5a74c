"""The OpenAPI document as the service really answers: the contract's error JSON on every /v1 operation.

FastAPI documents its own validation-error shape for 422; our handlers (truyvet/web.py) answer every
error, 422 included, as ``{"error": {"code", "message"}}``, and every /v1 route needs a bearer token
(401) with the right role or ward (403). This fills those in for every router, so clients and
schemathesis see what is actually sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from trace_api.models import ErrorOut

ERRORS = {"401": "Missing or unknown token", "403": "Role or ward not allowed", "422": "Invalid request"}


def install(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
        for name, sub in ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}").get(
                "$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas["ErrorOut"].pop("$defs", None)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for path, operations in spec.get("paths", {}).items():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                wanted = dict(ERRORS) if path.startswith("/v1/") else {}
                if "{" in path:
                    wanted["404"] = "Not found"
                if "422" in responses or op.get("parameters") or op.get("requestBody"):
                    wanted.setdefault("422", ERRORS["422"])
                for status, text in wanted.items():
                    responses[status] = {"description": responses.get(status, {}).get("description", text),
                                         "content": error}
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = build  # type: ignore[method-assign]
