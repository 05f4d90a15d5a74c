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
                if "{" in path or op.get("parameters"):  # an id in the path or a query may name nothing
                    wanted["404"] = "Not found"
                _document_exports(op)
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


# What a ``format`` query parameter's values answer (exports: trace_api/export.py).
EXPORT_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "pdf": "application/pdf"}


def _document_exports(op: dict[str, Any]) -> None:
    """An operation with a ``format`` parameter (json|csv|xlsx) answers those content types too: the
    success response says so, whichever router declared it."""
    values: set[str] = set()
    for param in op.get("parameters", ()):
        if param.get("name") != "format" or param.get("in") != "query":
            continue
        schema = param.get("schema", {})
        for option in [schema, *schema.get("anyOf", [])]:
            values.update(str(v) for v in option.get("enum", ()))
            values.update(v for v in EXPORT_TYPES if v in str(option.get("pattern", "")))
    for status, response in op.get("responses", {}).items():
        if status.startswith("2"):
            content = response.setdefault("content", {})
            for value in sorted(values & EXPORT_TYPES.keys()):
                content.setdefault(EXPORT_TYPES[value], {"schema": {"type": "string"}})
