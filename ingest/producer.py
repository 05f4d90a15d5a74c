"""The scan producer: idempotent, ``acks=all``, keyed by person so one person's scans keep order."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ingest.exceptions import KafkaUnavailable
from truyvet.events import ScanEvent

logger = logging.getLogger(__name__)


class ScanProducer:
    def __init__(self, *, bootstrap: str, topic: str, timeout_seconds: float) -> None:
        self.topic = topic
        self.timeout = timeout_seconds
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            batch_size=256 * 1024,
            max_block_ms=int(timeout_seconds * 1000),
            request_timeout_ms=int(timeout_seconds * 1000),
            delivery_timeout_ms=int(timeout_seconds * 1000) + 1000,
            retries=2**31 - 1,
        )

    def send(self, scans: Sequence[ScanEvent]) -> None:
        """Write ``scans`` and return only once Kafka has confirmed every one of them.

        :raises KafkaUnavailable: if any write is not confirmed within the timeout; the caller must
            not acknowledge the scans (a retry by the client is harmless: scan_id dedups).
        """
        try:
            futures = [
                self._producer.send(self.topic, key=s.person_id.encode(), value=s.to_json()) for s in scans
            ]
            for future in futures:
                future.get(timeout=self.timeout)
        except KafkaError as exc:
            logger.warning("Kafka did not confirm %d scans: %s", len(scans), exc)
            raise KafkaUnavailable("Kafka did not confirm the scans", topic=self.topic, error=str(exc)) from exc

    def send_raw(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            self._producer.send(topic, key=key, value=value).get(timeout=self.timeout)
        except KafkaError as exc:
            raise KafkaUnavailable("Kafka did not confirm the write", topic=topic, error=str(exc)) from exc

    def close(self) -> None:
        self._producer.close(timeout=5)
