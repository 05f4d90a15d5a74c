"""A case's registration as Kafka records: traced persons, exposure windows, one alert per contact.

The trace API reads what it must (the case's visits, its trace, its contacts' visits) and hands them
here in the order late data needs (trace_api/alerting.py says why); every call returns once Kafka
confirmed its records (acks=all), or raises :class:`AlertPublishError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import Counter

from streams.alerting.settings import RAISED, AlertSettings, get_settings
from truyvet.alerts import alert_id
from truyvet.events import Alert, ExposureWindow, Topics, TracedPerson
from truyvet.exceptions import TruyvetError
from truyvet.kafka_clients import client_kwargs

logger = logging.getLogger(__name__)

WINDOWS = Counter("truyvet_alerts_windows_registered_total", "Exposure windows published for streaming matching")


class AlertPublishError(TruyvetError):
    """Kafka did not confirm the case's alerts, windows or traced persons."""


class VisitLike(Protocol):
    @property
    def visit_id(self) -> str: ...
    @property
    def person_id(self) -> str: ...
    @property
    def venue_id(self) -> str: ...
    @property
    def t_in(self) -> int: ...
    @property
    def t_out(self) -> int: ...


_lock = threading.Lock()
_producer: KafkaProducer | None = None


def producer() -> KafkaProducer:
    """One idempotent producer per process (kafka-python's producer is thread-safe)."""
    global _producer
    with _lock:
        if _producer is None:
            _producer = KafkaProducer(
                **client_kwargs(get_settings()), acks="all", enable_idempotence=True,
                linger_ms=2, retries=2**31 - 1, max_block_ms=10_000, request_timeout_ms=10_000,
                delivery_timeout_ms=15_000,
            )
        return _producer


def send_all(sends: list[tuple[str, bytes, bytes]], timeout: float = 15.0) -> None:
    """Produce ``(topic, key, value)`` records (default partitioner: murmur2 of the key) and wait for all."""
    p = producer()
    try:
        futures = [p.send(topic, key=key, value=value) for topic, key, value in sends]
        for future in futures:
            future.get(timeout=timeout)
    except KafkaError as exc:
        logger.error("alerts not confirmed by Kafka (%d records): %s", len(sends), exc)
        raise AlertPublishError("Kafka did not confirm the alerts", records=len(sends), error=str(exc)) from exc


class CasePublisher:
    """The records of one registered case.

    :param window_for: W in seconds at a venue (per category where configured).
    """

    def __init__(self, *, case_id: str, case_person: str, start: int, end: int, window_for: Callable[[str], int],
                 default_window: int, min_overlap: int, settings: AlertSettings | None = None) -> None:
        self.settings = settings or get_settings()
        self.case_id = case_id
        self.case_person = case_person
        self.start, self.end = start, end
        self.window_for = window_for
        self.default_window = default_window
        self.min_overlap = min_overlap
        self.expires_at = end + self.settings.followup_days * 86400

    def traced(self, persons: dict[str, int], generation: int) -> None:
        """Persons (-> the start of their traced period) whose visits, whenever written, are windows."""
        topic = self.settings.topic(Topics.TRACED)
        records = [TracedPerson(case_id=self.case_id, case_person_id=self.case_person, person_id=person,
                                generation=generation, t_from=t_from, t_to=self.end, window=self.default_window,
                                min_overlap=self.min_overlap, expires_at=self.expires_at)
                   for person, t_from in persons.items()]
        send_all([(topic, r.key, r.to_json()) for r in records])

    def windows(self, visits: Iterable[VisitLike], generation: int) -> int:
        """Exposure windows of ``generation``'s contacts from these visits, on their venues' partitions."""
        topic = self.settings.topic(Topics.EXPOSURE_MATCHING)
        windows = [ExposureWindow(
            case_id=self.case_id, case_person_id=self.case_person, generation=generation,
            via_person_id=None if generation == 1 else v.person_id, venue_id=v.venue_id, visit_id=v.visit_id,
            t_in=v.t_in, t_out=v.t_out, window=self.window_for(v.venue_id), min_overlap=self.min_overlap,
            case_end=self.end, expires_at=self.expires_at) for v in visits]
        send_all([(topic, w.venue_id.encode(), w.to_json()) for w in windows])
        WINDOWS.inc(len(windows))
        return len(windows)

    def alerts(self, contacts: Iterable[tuple[str, int, str]], wards: dict[str, str]) -> list[Alert]:
        """One alert per ``(person, generation, exposure venue)``, addressed to ``wards[person]``."""
        now = datetime.now(UTC).replace(microsecond=0)
        alerts = [Alert(alert_id=alert_id(self.case_id, person), case_id=self.case_id, person_id=person,
                        generation=generation, ward_code=wards.get(person, ""), venue_id=venue, created_at=now)
                  for person, generation, venue in contacts]
        topic = self.settings.topic(Topics.ALERTS)
        send_all([(topic, a.alert_id.encode(), a.model_dump_json().encode()) for a in alerts])
        RAISED.labels("case").inc(len(alerts))
        return alerts
