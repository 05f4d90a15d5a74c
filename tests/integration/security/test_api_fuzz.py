"""Schemathesis on every operation of both APIs (issue 13, item 5): no 5xx, every response as documented.

Generic: the operations are whatever the two OpenAPI documents list, so routes added later are covered
without touching this file. Each operation gets generated valid and invalid requests with a real admin
token (admin passes every role check, so requests reach the handlers, not only the 401 answer); the
count per operation is bounded (``EXAMPLES``) to keep ``make test`` short. Failures are collected over
all operations and reported once.
"""

from __future__ import annotations

import time
from collections import defaultdict

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ARTIFACTS
from truyvet.auth import Role

EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _fuzz(base_url: str, headers: dict[str, str], name: str) -> tuple[int, list[str]]:
    """(calls made, failures); each call's time goes to test-artifacts/api-fuzz-NAME.txt, the slowest
    calls also into the failures (a timeout is a stall to explain, not only to report)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    calls = 0
    timings: list[tuple[float, str, str]] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def run(case) -> None:  # noqa: ANN001
            nonlocal calls
            calls += 1
            began = time.monotonic()
            try:
                # 30 s, not the 10 s default: on a loaded machine the 28-day compliance trend once took longer
                case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
            finally:
                timings.append((time.monotonic() - began, case.operation.label, f"{case.query or ''}"[:200]))

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then fail once
            # hypothesis wraps a failure it could not repeat (FlakyFailure): name what failed the first time
            inner = "; ".join(f"{type(e).__name__}: {str(e)[:700]}" for e in getattr(exc, "exceptions", ()))
            failures.append(f"{operation.label}: {str(exc)[:1500]}" + (f" [first: {inner}]" if inner else ""))
    per_op: dict[str, list[float]] = defaultdict(list)
    for seconds, label, _ in timings:
        per_op[label].append(seconds)
    slowest = [f"{s:.2f} s {label} {query}" for s, label, query in sorted(timings, reverse=True)[:10]]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"api-fuzz-{name}.txt").write_text(
        "".join(f"{sum(t):8.2f} s {len(t):4d} calls max {max(t):6.2f} s {label}\n"
                for label, t in sorted(per_op.items(), key=lambda kv: -sum(kv[1])))
        + "slowest calls:\n" + "".join(f"  {line}\n" for line in slowest), encoding="utf-8")
    if failures:
        failures.append("slowest calls: " + "; ".join(slowest[:5]))
    return calls, failures


def test_ingest_api_conformance(services, token) -> None:  # noqa: ANN001
    calls, failures = _fuzz(services.ingest_url, token(Role.admin), "ingest")
    assert calls >= 5 * EXAMPLES // 2
    assert not failures, "\n\n".join(failures)


def test_trace_api_conformance(services, token) -> None:  # noqa: ANN001
    calls, failures = _fuzz(services.trace_url, token(Role.admin), "trace")
    assert calls >= 10 * EXAMPLES // 2
    assert not failures, "\n\n".join(failures)
