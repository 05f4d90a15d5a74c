"""The HTTP edge both APIs share, before any route runs (issue 13, item 6).

- A body larger than the service's ``max_body_bytes`` is refused with 413: at once when
  ``Content-Length`` says so, else as soon as the stream passes the cap (the rest is never read).
- A route that needs an API token (``truyvet.web.require``, the ``ApiToken`` scheme of the OpenAPI
  document) is authenticated here, before its body is read or parsed: an unauthenticated request is 401
  whatever its body holds. Its role and ward are checked by the route (403).
- Failed authentication is throttled per client address: after ``failed_auth_burst`` failures (refilled at
  ``failed_auth_per_second``) the client is answered 429 with ``Retry-After`` before any token is looked up.

Routes without ``require`` (health, metrics, static pages, and tokens of other kinds such as a citizen's
secret) are only size-capped here and authenticate themselves.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from anyio import to_thread
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from truyvet.auth import Principal, TokenStore
from truyvet.ratelimit import TokenBuckets, retry_after_header
from truyvet.schema.db import DatabaseError
from truyvet.web import API_TOKEN_SCHEME, ApiError

logger = logging.getLogger(__name__)

REFUSED = Counter("truyvet_http_refused_total", "Requests refused at the HTTP edge", ["reason"])


class _TooLarge(ApiError):
    """Raised from the body stream: FastAPI passes HTTP errors through its body parsing, so the route's
    error handler answers 413 whether the route parses a model or reads the body itself."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"the body may hold at most {limit} bytes")


def _secured_operations(app: Any) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every operation that takes an API token, from the app's OpenAPI document
    (``truyvet.web.require`` declares the ``ApiToken`` scheme): routes added by any router are covered."""
    out = []
    for path, operations in app.openapi().get("paths", {}).items():
        pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$")
        for method, op in operations.items():
            if any(API_TOKEN_SCHEME in requirement for requirement in op.get("security", ())):
                out.append((method.upper(), pattern))
    return out


def bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


class RequestGuard:
    """Pure ASGI middleware; the service's settings (``max_body_bytes``, ``failed_auth_*``) come from
    ``app.state.settings`` and its tokens from ``app.state.tokens``, both set at start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._failures: TokenBuckets | None = None
        self._secured: list[tuple[str, re.Pattern[str]]] | None = None

    def _needs_token(self, scope: Scope) -> bool:
        if self._secured is None:
            self._secured = _secured_operations(scope["app"])
        method, path = scope["method"], scope["path"]
        return any(m == method and p.match(path) for m, p in self._secured)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings = state.settings
        limit: int = settings.max_body_bytes
        if self._needs_token(scope):  # first: an unauthenticated request is 401, whatever its body
            refused = await self._authenticate(scope, state.tokens, settings)
            if refused is not None:
                await _answer(send, *refused)
                return
        length = _content_length(scope)
        if length is not None and length > limit:
            REFUSED.labels("too_large").inc()
            await _answer(send, 413, "body_too_large", f"the body may hold at most {limit} bytes")
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except _TooLarge:
            REFUSED.labels("too_large").inc()
            if not started:
                await _answer(send, 413, "body_too_large", f"the body may hold at most {limit} bytes")

    async def _authenticate(self, scope: Scope, tokens: TokenStore,
                            settings: Any) -> tuple[int, str, str, dict[str, str]] | None:
        if self._failures is None:
            self._failures = TokenBuckets(rate=settings.failed_auth_per_second, burst=settings.failed_auth_burst)
        client = (scope.get("client") or ("?", 0))[0]
        wait = self._failures.wait(client)
        if wait:
            REFUSED.labels("auth_throttled").inc()
            return (429, "too_many_failures", "too many failed authentications from this address; retry later",
                    {"Retry-After": retry_after_header(wait)})
        token = bearer(scope)
        principal: Principal | None = None
        if token:
            try:
                principal = await to_thread.run_sync(tokens.lookup, token)
            except DatabaseError as exc:
                logger.warning("token look-up failed: ClickHouse error code %s", exc.context.get("code"))
                return (503, "clickhouse_unavailable", "the database is unavailable; retry later",
                        {"Retry-After": "5"})
        if principal is None:
            self._failures.take(client, 1)
            REFUSED.labels("unauthorized").inc()
            message = "unknown, expired or revoked token" if token else "missing bearer token"
            return 401, "unauthorized", message, {"WWW-Authenticate": "Bearer"}
        scope.setdefault("state", {})["principal"] = principal
        return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
