"""HTTP plumbing both APIs share: the contract's error JSON, bearer-token auth, metrics, health."""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, ORJSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from truyvet.auth import Principal, Role, TokenStore
from truyvet.schema.db import DatabaseError

logger = logging.getLogger(__name__)

# The API-token scheme of every route that uses require(): named in the OpenAPI document, where
# truyvet.guard finds the operations to authenticate before their body is read.
API_TOKEN_SCHEME = "ApiToken"  # noqa: S105 - a scheme name, not a secret
api_token = HTTPBearer(scheme_name=API_TOKEN_SCHEME, auto_error=False,
                       description="An API token from `truyvet token create` (its role and ward decide the rest)")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """The contract's error JSON: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class ApiError(HTTPException):
    """An HTTP error with a machine-readable code, rendered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        return "error"


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        code = getattr(exc, "code", None) or _code_for(exc.status_code)
        return ORJSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid")
        return ORJSONResponse(error_body("invalid_request", message), status_code=422)

    @app.exception_handler(DatabaseError)
    async def _database(request: Request, exc: DatabaseError) -> ORJSONResponse:
        logger.warning("ClickHouse unavailable on %s %s: %s", request.method, request.url.path, exc)
        return ORJSONResponse(error_body("clickhouse_unavailable", "the database is unavailable; retry later"),
                              status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return ORJSONResponse(error_body("internal_error", "internal error"), status_code=500)


def install_health_and_metrics(app: FastAPI, health: Callable[[], dict[str, object]]) -> None:
    @app.get("/healthz", include_in_schema=True, tags=["ops"])
    def healthz() -> dict[str, object]:
        """Liveness and readiness (no token)."""
        return {"status": "ok", **health()}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def attachment(filename: str) -> dict[str, str]:
    """The ``Content-Disposition`` header of a download named ``filename``, which may hold request text (a
    ward code, a case id): only ``[A-Za-z0-9._-]`` are kept, so no header can break or carry a quote."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:120] or "download"
    return {"Content-Disposition": f'attachment; filename="{safe}"'}


def static_files(directory: Path) -> dict[str, Path]:
    """The files a page may load from ``directory``, by name: a request names one of these or gets 404."""
    return {p.name: p for p in directory.iterdir() if p.is_file()} if directory.is_dir() else {}


def static_response(files: Mapping[str, Path], name: str, headers: Mapping[str, str]) -> FileResponse:
    """One of ``files`` with its media type (text and scripts as UTF-8), or 404."""
    path = files.get(name)
    if path is None:
        raise ApiError(404, "not_found", f"no file {name}")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media.endswith("javascript"):
        media += "; charset=utf-8"
    return FileResponse(path, media_type=media, headers=dict(headers))


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def require(*roles: Role) -> Callable[..., Principal]:
    """A FastAPI dependency admitting only API tokens with one of ``roles`` (admin always passes)."""
    allowed = frozenset(roles) | {Role.admin}

    def dependency(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = Security(api_token)) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)  # set by truyvet.guard
        if principal is None:
            if credentials is None or not credentials.credentials.strip():
                raise ApiError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
            store: TokenStore = request.app.state.tokens
            principal = store.lookup(credentials.credentials.strip())
        if principal is None:
            raise ApiError(401, "unauthorized", "unknown, expired or revoked token",
                           headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in allowed:
            raise ApiError(403, "forbidden", f"role {principal.role.value} may not do this")
        return principal

    return dependency
