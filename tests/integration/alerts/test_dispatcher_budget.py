"""The dispatcher on its own topics: dead-letters after the retry budget, commits only what is done,
and loses nothing when it is killed mid-retry.

Runs its own dispatcher process (its own topic prefix, small retry budget) against the shared
Kafka and this run's ClickHouse database; alerts are produced straight to its ``alerts`` topic.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from streams.alerting.webhooks import set_webhook
from tests.integration.alerts.receiver import Receiver, metric, wait_for
from tests.integration.topics import records_until
from truyvet.alerts import alert_id
from truyvet.events import Alert, Topics
from truyvet.kafka_clients import client_kwargs
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.kafka import ensure_topics
from truyvet.stack.processes import ProcessDir, free_port
from truyvet.stack.services import http_ok

pytestmark = pytest.mark.integration


@pytest.fixture()
def own(infra: CommonSettings) -> Iterator[dict[str, object]]:
    prefix = f"{infra.topic_prefix}disp{uuid.uuid4().hex[:6]}-"
    settings = CommonSettings(topic_prefix=prefix)
    ensure_topics(settings)
    procs = ProcessDir(infra.data_dir / "test-runs" / f"dispatcher-{uuid.uuid4().hex[:6]}")
    port = free_port()
    env = {
        "TRUYVET_TOPIC_PREFIX": prefix,
        "PYTHONPATH": str(PROJECT_ROOT),
        "ALERTS_DISPATCHER_PORT": str(port),
        "ALERTS_BACKOFF_BASE_SECONDS": "0.1",
        "ALERTS_BACKOFF_CAP_SECONDS": "0.3",
    }
    started: list[str] = []

    def start(name: str, **extra: str) -> int:
        pid = procs.start(
            name, (sys.executable, "-m", "streams.alerting.dispatcher"), env={**env, **extra}, cwd=PROJECT_ROOT
        )
        started.append(name)
        wait_for(
            lambda: http_ok_or_false(f"http://127.0.0.1:{port}/metrics"), timeout=30, what="dispatcher up"
        )
        return pid

    producer = KafkaProducer(**client_kwargs(infra), acks="all")
    yield {
        "settings": settings,
        "start": start,
        "procs": procs,
        "producer": producer,
        "metrics": f"http://127.0.0.1:{port}/metrics",
    }
    producer.close()
    for name in started:
        procs.stop(name)


def http_ok_or_false(url: str) -> bool:
    try:
        return http_ok(url)
    except OSError:
        return False


def _alert(ward: str) -> Alert:
    case, person = f"case_{uuid.uuid4().hex[:8]}", f"p{uuid.uuid4().hex[:8]}"
    return Alert(
        alert_id=alert_id(case, person),
        case_id=case,
        person_id=person,
        generation=1,
        ward_code=ward,
        venue_id="ven_x",
        created_at=datetime.now(UTC),
    )


def _send(producer: KafkaProducer, topic: str, alerts: list[Alert], raw: tuple[bytes, ...] = ()) -> None:
    futures = [
        producer.send(topic, key=a.alert_id.encode(), value=a.model_dump_json().encode()) for a in alerts
    ]
    futures += [producer.send(topic, value=r) for r in raw]
    for f in futures:
        f.get(timeout=15)


def _states(db, ids: list[str]) -> dict[str, tuple[str, int]]:
    rows = db.execute(
        "SELECT alert_id, status, attempts FROM alerts FINAL WHERE alert_id IN %(i)s", {"i": tuple(ids)}
    )
    return {str(a): (str(s), int(n)) for a, s, n in rows}


def test_dead_letter_after_the_budget_and_offsets_committed_only_when_done(own, db, infra) -> None:
    settings: CommonSettings = own["settings"]  # type: ignore[assignment]
    dead_ward, good_ward = f"DEAD{uuid.uuid4().hex[:6]}", f"GOOD{uuid.uuid4().hex[:6]}"
    receiver = Receiver(uuid.uuid4().hex).start()
    try:
        set_webhook(db, ward_code=dead_ward, url=f"http://127.0.0.1:{free_port()}/down", secret="x" * 20)
        set_webhook(db, ward_code=good_ward, url=receiver.url, secret=receiver.secret)
        own["start"]("budget", ALERTS_MAX_ATTEMPTS="3")  # type: ignore[operator]
        doomed, fine = [_alert(dead_ward) for _ in range(3)], _alert(good_ward)
        _send(own["producer"], settings.topic(Topics.ALERTS), [*doomed, fine], (b"not an alert",))  # type: ignore[arg-type]

        # Its partitions assigned and read from the start (a group-less subscription could miss records
        # written before its first metadata answer: once, nothing in 60 s on a loaded machine).
        letters = [orjson.loads(m.value) for m in records_until(
            infra, settings.topic(Topics.ALERTS_DLQ), lambda seen: len(seen) >= 4, what="4 dead letters")]
        undeliverable = [x for x in letters if x["error_code"] == "undeliverable"]
        assert sorted(orjson.loads(x["raw"])["alert_id"] for x in undeliverable) == sorted(
            a.alert_id for a in doomed
        )
        assert all("after 3 attempts" in x["reason"] for x in undeliverable)
        assert [x["raw"] for x in letters if x["error_code"] == "invalid_alert"] == ["not an alert"]
        wait_for(
            lambda: (
                _states(db, [a.alert_id for a in [*doomed, fine]])
                == {**{a.alert_id: ("dead_lettered", 3) for a in doomed}, fine.alert_id: ("delivered", 1)}
            ),
            timeout=30,
            what="states recorded",
        )
        assert [d.alert["alert_id"] for d in receiver.deliveries] == [fine.alert_id]
        url = str(own["metrics"])
        assert metric(url, "truyvet_alerts_delivered_total") == 1
        assert metric(url, "truyvet_alerts_dead_lettered_total") == 4  # 3 undeliverable + 1 invalid
        assert metric(url, "truyvet_alerts_delivery_retries_total") == 3 * 2  # 2 retries before the 3rd try
        assert metric(url, "truyvet_alerts_delivery_latency_seconds_count") == 1

        # Everything was handled, so the group's committed offsets reach the end of every partition.
        admin = KafkaAdminClient(**client_kwargs(infra))
        probe = KafkaConsumer(**client_kwargs(infra))
        try:
            topic = settings.topic(Topics.ALERTS)
            parts = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic)]
            ends = probe.end_offsets(parts)

            def committed_to_end() -> bool:
                group = settings.topic_prefix + "truyvet-alert-dispatcher"
                got = admin.list_group_offsets(group).get(group, {})
                return all(got.get(tp) is not None and got[tp].offset == ends[tp] for tp in parts if ends[tp])

            wait_for(committed_to_end, timeout=15, what="offsets committed to the end")
        finally:
            admin.close()
            probe.close()
    finally:
        receiver.stop()


def test_an_alert_in_retry_survives_a_dispatcher_crash(own, db) -> None:
    settings: CommonSettings = own["settings"]  # type: ignore[assignment]
    ward = f"CRASH{uuid.uuid4().hex[:6]}"
    receiver = Receiver(uuid.uuid4().hex)  # down for now
    set_webhook(db, ward_code=ward, url=receiver.url, secret=receiver.secret)
    pid = own["start"]("crash")  # type: ignore[operator]
    alert = _alert(ward)
    _send(own["producer"], settings.topic(Topics.ALERTS), [alert])  # type: ignore[arg-type]
    wait_for(
        lambda: _states(db, [alert.alert_id]).get(alert.alert_id, ("", 0))[1] >= 2,
        timeout=30,
        what="alert retrying",
    )
    os.killpg(pid, signal.SIGKILL)  # a crash: nothing gets to finish or commit
    own["procs"].stop("crash")  # type: ignore[attr-defined]
    receiver.start()
    try:
        own["start"]("crash-restarted")  # type: ignore[operator]
        wait_for(lambda: receiver.deliveries, timeout=60, what="alert delivered after the restart")
        wait_for(
            lambda: _states(db, [alert.alert_id])[alert.alert_id][0] == "delivered",
            timeout=30,
            what="delivered recorded",
        )
        assert {d.idempotency_key for d in receiver.deliveries} == {alert.alert_id}
        assert all(d.signature_valid for d in receiver.deliveries)
    finally:
        receiver.stop()
