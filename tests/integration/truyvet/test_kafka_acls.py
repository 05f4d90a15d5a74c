"""Kafka accounts (issue 13, item 3): SASL/SCRAM-SHA-512 only, and ACLs let each service write only its
topics. kcat is driven by ``truyvet kafka-config`` properties, as an operator or a device would."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from tests.integration.kcat import kcat_config
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs
from truyvet.settings import CommonSettings


def _kcat_produce(settings: CommonSettings, config: tuple[Path, dict[str, str]], topic: str) -> str:
    path, env = config
    result = subprocess.run(["kcat", "-F", str(path), "-P", "-t", settings.topic(topic), "-X", "acks=all",
                             "-X", "message.timeout.ms=10000"], input=f"probe {uuid.uuid4()}\n".encode(),
                            capture_output=True, check=False, timeout=60, env=env)
    return result.stderr.decode(errors="replace")


def test_a_device_account_writes_scans_but_not_alerts(infra: CommonSettings, tmp_path: Path) -> None:
    device = kcat_config("device", tmp_path)
    assert "ERROR" not in _kcat_produce(infra, device, Topics.SCANS)
    for topic in (Topics.ALERTS, Topics.SCANS_DLQ, Topics.VENUES, Topics.TRACED):
        assert "Topic authorization failed" in _kcat_produce(infra, device, topic), topic


def test_service_accounts_write_only_their_topics(infra: CommonSettings) -> None:
    # ingest writes alerts since issue 15 (health declarations), not traced persons
    cases = [("dispatcher", Topics.SCANS), ("ingest", Topics.TRACED), ("trace", Topics.SCANS),
             ("worker", Topics.VENUES), ("device", Topics.ALERTS)]
    for account, topic in cases:
        producer = KafkaProducer(**client_kwargs(infra.as_account(kafka=account)), max_block_ms=10_000)
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                producer.send(infra.topic(topic), b"not allowed").get(timeout=15)
        finally:
            producer.close()
    allowed = KafkaProducer(**client_kwargs(infra.as_account(kafka="trace")), max_block_ms=10_000)
    try:
        allowed.send(infra.topic(Topics.TRACED), key=b"probe|probe", value=None).get(timeout=15)
    finally:
        allowed.close()


def test_clients_without_credentials_or_with_a_wrong_password_are_refused(infra: CommonSettings,
                                                                          tmp_path: Path) -> None:
    # no SASL at all: the broker's only client listener wants it (kcat below: a wrong password too)
    _refused({"bootstrap_servers": infra.kafka_bootstrap}, infra.topic(Topics.SCANS))
    nobody = tmp_path / "nobody.properties"
    nobody.write_text(f"bootstrap.servers={infra.kafka_bootstrap}\n")
    path, env = kcat_config("device", tmp_path)
    guess = tmp_path / "guess.properties"
    guess.write_text("".join(line if not line.startswith("sasl.password=") else "sasl.password=guess\n"
                             for line in path.read_text().splitlines(keepends=True)))
    for config, expected in ((nobody, "Broker transport failure"), (guess, "invalid credentials")):
        result = subprocess.run(["kcat", "-F", str(config), "-L", "-m", "3"], capture_output=True, check=False,
                                timeout=60, env=env)
        assert result.returncode != 0 and expected in result.stderr.decode(), result.stderr


def _refused(options: dict[str, object], topic: str) -> None:
    try:
        producer = KafkaProducer(**options, max_block_ms=3_000, bootstrap_timeout_ms=3_000)
    except KafkaError:
        return  # refused while connecting
    try:
        with pytest.raises(KafkaError):
            producer.send(topic, b"not allowed").get(timeout=10)
    finally:
        producer.close(timeout=5)
