"""Restart Kafka while a client sends scans: every 202 is in Kafka exactly once, and the outage was
answered 503 + Retry-After, never a silent loss.

Runs its OWN Kafka (own data dir and ports) and its own ingest process pointed at it; the shared
broker is never touched.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import clickhouse_env
from tests.integration.topics import all_records
from truyvet.auth import Role
from truyvet.kafka_clients import client_kwargs
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.kafka import KafkaNode, ensure_topics
from truyvet.stack.kafka_accounts import APP_ID_PREFIX, DISPATCHER_GROUP
from truyvet.stack.processes import ProcessDir, free_port, port_open, wait_until

pytestmark = pytest.mark.slow


class _Kafka(KafkaNode):
    def ready(self) -> bool:  # a closed port answers at once; kafka-python's bootstrap backs off for long
        return port_open(self.host, self.port) and super().ready()


@dataclass
class OwnStack:
    settings: CommonSettings
    kafka: KafkaNode
    procs: ProcessDir
    url: str


def _own_broker(infra: CommonSettings, tmp_path: Path, prefix: str) -> tuple[CommonSettings, _Kafka]:
    """A Kafka broker of the test's own (own data dir and ports, the jars `make install` fetched), started."""
    settings = CommonSettings(data_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}",
                              kafka_controller_port=free_port(), topic_prefix=f"{infra.topic_prefix}{prefix}")
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "libs").symlink_to(infra.data_dir / "kafka" / "libs")
    kafka = _Kafka(settings)
    kafka.start(timeout=120)
    return settings, kafka


@pytest.fixture()
def own_stack(infra: CommonSettings, db, tmp_path: Path) -> Iterator[OwnStack]:
    """Own Kafka (own data dir and ports) and an ingest process pointed at it, answering 503 after 3 s."""
    settings, kafka = _own_broker(infra, tmp_path, "restart-")
    procs = ProcessDir(tmp_path)
    try:
        ensure_topics(settings)
        port = free_port()
        env = {"PYTHONPATH": str(PROJECT_ROOT), "TRUYVET_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
               "TRUYVET_TOPIC_PREFIX": settings.topic_prefix, "TRUYVET_DATA_DIR": str(tmp_path),
               "INGEST_PRODUCE_TIMEOUT_SECONDS": "3", "INGEST_RETRY_AFTER_SECONDS": "1",
               "INGEST_QR_KEYS_DIR": str(tmp_path / "keys"), **clickhouse_env(infra)}
        procs.start("ingest", [sys.executable, "-m", "uvicorn", "ingest.main:app", "--host", "127.0.0.1",
                               "--port", str(port), "--no-access-log", "--log-level", "warning"],
                    env=env, cwd=PROJECT_ROOT)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/healthz").json()["kafka"] == "connected", timeout=60,
                   what="restart-test ingest")
        yield OwnStack(settings, kafka, procs, url)
    finally:
        procs.stop("ingest")
        kafka.stop()


@dataclass
class Client:
    url: str
    headers: dict[str, str]
    venue: str
    acked: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # Retry-After values of the 503s
    other: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)  # resent like a 503: no answer, no ack
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=60) as http:  # longer than the server's produce timeout (3 s)
            while not self.stop.is_set():
                at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
                batch = [{"scan_id": str(uuid.uuid4()), "scanned_at": at, "venue_id": self.venue,
                          "person_id": f"r{uuid.uuid4().hex[:6]}"} for _ in range(20)]
                while True:  # resend the same scan_ids until acknowledged, as a device would
                    try:
                        r = http.post(f"{self.url}/v1/scans/batch", headers=self.headers, json=batch)
                    except httpx.TransportError as exc:
                        self.transport_errors.append(repr(exc))
                        continue
                    if r.status_code == 202:
                        body = r.json()
                        assert body["accepted"] + body["duplicates"] == len(batch) and not body["rejected"]
                        self.acked.extend(str(s["scan_id"]) for s in batch)
                        break
                    if r.status_code == 503:
                        self.unavailable.append(r.headers.get("Retry-After", ""))
                        time.sleep(0.2)  # shorter than Retry-After: the test wants many tries
                        continue
                    self.other.append(f"{r.status_code} {r.text[:200]}")
                    return


def _scan_ids_in_kafka(settings: CommonSettings) -> Counter[str]:
    return Counter(orjson.loads(rec.value)["scan_id"] for rec in all_records(settings, settings.topic("scans")))


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_kafka_restart_loses_nothing_and_duplicates_nothing(own_stack: OwnStack, token) -> None:
    r = httpx.post(f"{own_stack.url}/v1/venues", headers=token(Role.registrar), timeout=30,
                   json={"name": "Chợ Phùng Chí Kiên", "category": "market_shop", "ward_code": "01843"})
    assert r.status_code == 201, r.text
    client = Client(own_stack.url, token(Role.device), r.json()["venue_id"])
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: len(client.acked) >= 400, 60, "scans acknowledged before the restart")
        own_stack.kafka.stop()
        _wait_for(lambda: len(client.unavailable) >= 3, 60, "503 answers while Kafka is down")
        before = len(client.acked)
        own_stack.kafka.start(timeout=120)
        _wait_for(lambda: len(client.acked) >= before + 400, 120, "scans acknowledged after the restart")
    finally:
        client.stop.set()
        thread.join(timeout=90)
    assert not thread.is_alive() and client.other == []
    assert client.unavailable and all(v.isdigit() and int(v) >= 1 for v in client.unavailable)

    in_kafka = _scan_ids_in_kafka(own_stack.settings)
    acked = Counter(client.acked)
    print(f"restart: {len(acked)} scans acknowledged, {len(client.unavailable)} answers 503 "
          f"(Retry-After {sorted(set(client.unavailable))}), {len(client.transport_errors)} dropped connections, "
          f"{sum(in_kafka.values())} records in Kafka for {len(in_kafka)} scan_ids")
    assert max(acked.values()) == 1
    missing = [s for s in acked if in_kafka[s] == 0]
    twice = [s for s in acked if in_kafka[s] > 1]
    assert missing == [] and twice == [], (len(missing), len(twice))
    # every scan the client ever sent was eventually acknowledged, so Kafka holds nothing more
    assert set(in_kafka) == set(acked)


def test_services_may_use_their_topics_once_a_fresh_broker_has_them(infra: CommonSettings, tmp_path: Path) -> None:
    """Right after a broker starts, it applied new ACLs about 1.5 s after the controller accepted them:
    a dispatcher started meanwhile was refused its topic (TopicAuthorizationFailed) and exited. The topics
    and ACLs made by ``ensure_topics`` are usable by the accounts the moment it returns."""
    from aiokafka import AIOKafkaConsumer

    settings, kafka = _own_broker(infra, tmp_path, "fresh-")
    try:
        ensure_topics(settings)

        async def first_try(role: str, topic: str, group: str) -> None:
            account = settings.as_account(kafka=role)
            consumer = AIOKafkaConsumer(account.topic(topic), group_id=group, **client_kwargs(account))
            try:
                await consumer.start()  # raises TopicAuthorizationFailedError when the ACLs are not served
                assert consumer.assignment() is not None
            finally:
                await consumer.stop()

        async def both() -> None:
            await first_try("dispatcher", "alerts", settings.topic_prefix + DISPATCHER_GROUP)
            await first_try("worker", "scans", f"{APP_ID_PREFIX}fresh-test")

        asyncio.run(both())
    finally:
        kafka.stop()
