"""Webhook signatures, backoff and offset bookkeeping of the alert dispatcher (pure parts)."""

from __future__ import annotations

import pytest

from streams.alerting.delivery import OffsetTracker, backoff, sign, signed_headers, verify
from streams.alerting.webhooks import valid_url
from truyvet.alerts import alert_id

SECRET = "s3cret-of-the-ward-health-center"
BODY = b'{"alert_id":"al_1","case_id":"case_1"}'


def test_a_signed_request_verifies_and_carries_the_idempotency_key() -> None:
    headers = signed_headers(SECRET, BODY, "al_1", now=1_700_000_000)
    assert headers["Idempotency-Key"] == "al_1"
    assert headers["X-Truyvet-Timestamp"] == "1700000000"
    assert verify(
        SECRET, headers["X-Truyvet-Timestamp"], headers["X-Truyvet-Signature"], BODY, now=1_700_000_010
    )


@pytest.mark.parametrize(
    ("secret", "body", "timestamp", "now"),
    [
        ("another-secret-entirely-000", BODY, 1_700_000_000, 1_700_000_000),  # wrong key
        (SECRET, BODY.replace(b"case_1", b"case_2"), 1_700_000_000, 1_700_000_000),  # body changed
        (SECRET, BODY, 1_700_000_000, 1_700_000_301),  # replayed after the tolerance
        (SECRET, BODY, 1_700_000_000, 1_699_999_000),  # timestamp from the future
    ],
)
def test_tampered_or_replayed_requests_do_not_verify(
    secret: str, body: bytes, timestamp: int, now: int
) -> None:
    signature = sign(SECRET, 1_700_000_000, BODY)
    assert not verify(secret, str(timestamp), signature, body, now=now)


def test_the_timestamp_is_inside_the_mac() -> None:
    signature = sign(SECRET, 1_700_000_000, BODY)
    assert not verify(SECRET, "1700000100", signature, BODY, now=1_700_000_100)
    assert not verify(SECRET, "not-a-number", signature, BODY, now=1_700_000_000)


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    assert [backoff(n, base=0.5, cap=30, rng=lambda: 1.0) for n in range(1, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
    assert [backoff(n, base=0.5, cap=30, rng=lambda: 0.0) for n in (1, 3)] == [0.25, 1.0]
    delays = {backoff(4, base=0.5, cap=30) for _ in range(50)}
    assert len(delays) > 1 and all(2.0 <= d <= 4.0 for d in delays)


def test_offsets_commit_only_below_the_oldest_unfinished_alert() -> None:
    t = OffsetTracker()
    for offset in (10, 11, 12):
        t.add("p0", offset)
    t.add("p1", 5)
    assert t.to_commit() == {"p0": 10, "p1": 5}
    t.committed({"p0": 10, "p1": 5})
    t.done("p0", 11)  # out of order: 10 is still retrying
    t.done("p1", 5)
    assert t.to_commit() == {"p1": 6}
    t.committed({"p1": 6})
    t.done("p0", 10)
    assert t.to_commit() == {"p0": 12}
    t.done("p0", 12)
    assert t.to_commit() == {"p0": 13}
    assert t.in_flight() == 0
    t.forget(["p1"])
    t.add("p1", 6)
    assert t.to_commit() == {}  # 6 is pending and 6 was already committed


def test_alert_ids_are_deterministic_per_case_and_contact() -> None:
    assert alert_id("case_a", "p1") == alert_id("case_a", "p1")
    assert len({alert_id("case_a", "p1"), alert_id("case_a", "p2"), alert_id("case_b", "p1")}) == 3
    assert alert_id("case_a", "p1").startswith("al_")


def test_webhook_urls_must_be_http() -> None:
    assert valid_url("https://tram-y-te.example/alerts") and valid_url("http://127.0.0.1:9999/x")
    assert not valid_url("ftp://x/y") and not valid_url("javascript:alert(1)") and not valid_url("/relative")
