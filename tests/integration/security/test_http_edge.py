"""The HTTP edge of both APIs (issue 13, item 6), against the real services.

- a body over the cap is 413 (declared by Content-Length or streamed without one), never parsed;
- an unauthenticated request is 401 whatever its body (12 MiB, or nested 100,000 deep), before it is read;
- failed authentication is throttled per client (429 + Retry-After), even for a valid token afterwards;
- traces and personal-detail reads are limited per token (429 + Retry-After; another token is unaffected);
- the token cache is bounded; tokens expire (a default, ``--expires``); a revocation holds within
  ``CACHE_SECONDS``.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner, Result

from truyvet.auth import (
    CACHE_SECONDS,
    DEFAULT_TOKEN_DAYS,
    Role,
    TokenStore,
    create_token,
    hash_token,
    parse_lifetime,
)
from truyvet.cli.token import token as token_command
from truyvet.settings import PROJECT_ROOT
from truyvet.stack.processes import free_port, wait_until
from truyvet.stack.services import http_ok

MIB = 1024 * 1024
NESTED = b"[" * 100_000 + b"]" * 100_000


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_unauthenticated_bodies_are_401_before_they_are_read(services, http: httpx.Client) -> None:  # noqa: ANN001
    big = b" " * (12 * MIB)
    for url in (f"{services.ingest_url}/v1/scans/batch", f"{services.ingest_url}/v1/venues",
                f"{services.trace_url}/v1/cases", f"{services.trace_url}/v1/dashboard/places"):
        for body in (big, NESTED):
            for headers in ({}, _bearer("tv_not-a-token")):
                r = http.post(url, content=body, headers={"Content-Type": "application/json", **headers})
                assert r.status_code == 401, (url, len(body), headers, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "unauthorized"


def test_bodies_over_the_cap_are_413_declared_or_streamed(services, token, http: httpx.Client) -> None:  # noqa: ANN001
    device = token(Role.device)
    url = f"{services.ingest_url}/v1/scans/batch"
    r = http.post(url, content=b" " * (12 * MIB), headers=device)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, the cap counts what arrives
        yield b'{"scans": ['
        for _ in range(12 * 64):
            yield b" " * 16384

    r = http.post(url, content=chunks(), headers=device)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = http.post(f"{services.trace_url}/v1/dashboard/places", content=b" " * (2 * MIB),
                  headers={**token(Role.epidemiologist), "Content-Type": "application/json"})
    assert r.status_code == 413
    # Under the cap, a nested body from a valid token is a clear 4xx, never a 5xx.
    for target, role in ((f"{services.ingest_url}/v1/venues", Role.registrar), (url, Role.device),
                         (f"{services.trace_url}/v1/cases", Role.epidemiologist)):
        r = http.post(target, content=NESTED, headers={**token(role), "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (target, r.status_code, r.text[:200])


@pytest.fixture()
def strict_trace(services) -> Iterator[str]:  # noqa: ANN001
    """A trace API of its own with small limits: 3 traces and 2 personal reads a minute, 5 failed logins."""
    port = free_port()
    name = f"trace-strict-{uuid.uuid4().hex[:6]}"
    argv = (sys.executable, "-m", "uvicorn", "trace_api.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning")
    env = {**services.env, "TRUYVET_TRACE_PORT": str(port), "TRUYVET_FAILED_AUTH_BURST": "5",
           "TRUYVET_FAILED_AUTH_PER_SECOND": "0.01", "TRACE_TRACES_PER_MINUTE": "3",
           "TRACE_PERSONAL_READS_PER_MINUTE": "2"}
    services.procs.start(name, argv, env=env, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/healthz"), timeout=60, what=name)
        yield url
    finally:
        services.procs.stop(name)


def test_rate_limits_per_token_and_failed_logins_per_client(strict_trace: str, db, http: httpx.Client) -> None:  # noqa: ANN001
    url = strict_trace
    epi, other = (_bearer(create_token(db, role=Role.epidemiologist, name="limits")) for _ in range(2))
    r = http.post(f"{url}/v1/cases", headers=epi, json={"person_id": f"p{uuid.uuid4().hex[:8]}",
                                                        "infectious_from": "2026-11-20T00:00:00Z",
                                                        "infectious_to": "2026-11-21T00:00:00Z"})
    case_id = r.json()["case_id"]
    for path in ("contacts", "exposure-sites", "contacts"):
        assert http.get(f"{url}/v1/cases/{case_id}/{path}", headers=epi).status_code == 200
    r = http.get(f"{url}/v1/cases/{case_id}/contacts", headers=epi)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert http.get(f"{url}/v1/cases/{case_id}/contacts", headers=other).status_code == 200

    why = {"reason": "gọi điện"}
    for _ in range(2):
        assert http.get(f"{url}/v1/persons/nobody", headers=epi, params=why).status_code == 404
    r = http.get(f"{url}/v1/persons/nobody", headers=epi, params=why)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1

    for _ in range(5):
        assert http.get(f"{url}/v1/alerts", headers=_bearer("tv_guess")).status_code == 401
    for headers in (_bearer("tv_guess"), other, {}):
        r = http.get(f"{url}/v1/alerts", headers=headers)
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_failures", headers
        assert int(r.headers["Retry-After"]) >= 1
    assert http.get(f"{url}/healthz").status_code == 200, "routes without a token are not throttled"


def test_the_token_cache_is_bounded(db) -> None:  # noqa: ANN001
    store = TokenStore(db, size=50)
    known = create_token(db, role=Role.viewer, name="cache")
    assert store.lookup(known) is not None
    for i in range(300):
        assert store.lookup(f"tv_guess-{i}") is None
    assert len(store) == 50
    assert store.lookup(known) is not None


def _truyvet(*args: str) -> Result:
    """``truyvet token ARGS``, the real command, run in this process."""
    return CliRunner().invoke(token_command, list(args[1:]))


def test_tokens_expire_by_default_and_with_expires(services, db, http: httpx.Client) -> None:  # noqa: ANN001
    before = datetime.now(UTC).replace(microsecond=0)
    default = create_token(db, role=Role.viewer, name="expiry")
    made = _truyvet("token", "create", "--role", "viewer", "--name", "short", "--expires", "1m")
    assert made.exit_code == 0, made.output
    short = made.output.strip().splitlines()[-1]
    expiry = dict(db.execute("SELECT token_hash, expires_at FROM api_token_expiry FINAL WHERE token_hash IN %(h)s",
                             {"h": (hash_token(default), hash_token(short))}))
    at = {k: v.replace(tzinfo=UTC) for k, v in expiry.items()}
    assert timedelta(days=DEFAULT_TOKEN_DAYS) <= at[hash_token(default)] - before <= timedelta(days=DEFAULT_TOKEN_DAYS,
                                                                                               minutes=1)
    assert timedelta(seconds=60) <= at[hash_token(short)] - before <= timedelta(seconds=120)
    refused = _truyvet("token", "create", "--role", "viewer", "--expires", "400d")
    assert refused.exit_code == 2 and "--expires" in refused.output, refused.output
    for bad in ("0d", "400d", "soon", "-5m", "5", "１d"):
        with pytest.raises(ValueError, match="--expires"):
            parse_lifetime(bad)
    assert parse_lifetime("45m") == timedelta(minutes=45) and parse_lifetime("366d") == timedelta(days=366)

    # A token past its expiry is refused like an unknown one.
    expired = create_token(db, role=Role.viewer, name="expired")
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("api_token_expiry", ["token_hash", "expires_at", "updated_at"],
              [(hash_token(expired), now - timedelta(seconds=1), now + timedelta(seconds=1))])
    url = f"{services.trace_url}/v1/reports/coverage"
    r = http.get(url, headers=_bearer(expired))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert http.get(url, headers=_bearer(default)).status_code == 200


def test_a_revoked_token_stops_working_within_the_cache_bound(services, db, http: httpx.Client) -> None:  # noqa: ANN001
    value = create_token(db, role=Role.viewer, name="revoke")
    url = f"{services.trace_url}/v1/reports/coverage"
    assert http.get(url, headers=_bearer(value)).status_code == 200  # now cached by the service
    revoked = _truyvet("token", "revoke", value[:10])
    assert revoked.exit_code == 0 and "revoked 1 token" in revoked.output
    deadline = time.monotonic() + CACHE_SECONDS + 2  # the stated bound, plus the request's own time
    status = 200
    while status != 401 and time.monotonic() < deadline:
        status = http.get(url, headers=_bearer(value)).status_code
        time.sleep(0.2)
    assert status == 401, f"still {status} {CACHE_SECONDS + 2:.0f}s after revocation"
