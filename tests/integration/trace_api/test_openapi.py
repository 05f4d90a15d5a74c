"""The trace API's OpenAPI document: every endpoint documented with the contract's error JSON.

Schemathesis on every operation of both APIs is tests/integration/security/test_api_fuzz.py.
"""

from __future__ import annotations


def test_every_endpoint_is_documented_with_the_error_json(services, http) -> None:  # noqa: ANN001
    spec = http.get(f"{services.trace_url}/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/cases", "/v1/cases/{case_id}/contacts", "/v1/cases/{case_id}/exposure-sites",
                 "/v1/persons/{person_id}", "/v1/audit", "/healthz", "/metrics"):
        assert path in paths, path
    for path, ops in paths.items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("description"), (method, path)
            if path.startswith("/v1/"):
                for status in ("401", "403", "422"):
                    ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, status)
