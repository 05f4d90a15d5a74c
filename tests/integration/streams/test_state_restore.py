"""State restore per store (issue 16): what the worker wrote it reads back; what it cannot read stops it loudly.

For each of the worker's stores (person-scans, exposure-windows, alerted): records written by a worker are
restored by the next one (keys counted after a restart), and a record the store's codec cannot read makes
the worker stop with an error naming the topic, partition and offset, with ``/healthz`` saying so
meanwhile, instead of a warning repeated for ever.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaProducer

from streams.config import StreamsSettings
from streams.worker import ensure_state_topics
from tests.integration.streams.harness import Pipeline, metric, wait_for
from tests.unit.streams.scenarios import VenueSpec
from truyvet.events import ExposureWindow
from truyvet.kafka_clients import client_kwargs
from truyvet.stack.processes import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORES = ("person-scans", "exposure-windows", "alerted")
VALID = {"person-scans": b'{"s":[],"p":0}', "exposure-windows": b"[]", "alerted": b"1999999999"}


def _stopped_after_first_start(p: Pipeline) -> Pipeline:
    """A pipeline whose stores' changelog topics exist, made as a worker makes them before it first starts
    (streams.worker.ensure_state_topics), and no worker running yet."""
    p.create([VenueSpec("v1", "food_drink", 0)])
    ensure_state_topics(StreamsSettings(app_id=p.app_id, topic_prefix=p.prefix,
                                        kafka_bootstrap=p.settings.kafka_bootstrap).as_account(kafka="admin"))
    return p


def _produce(p: Pipeline, topic: str, records: list[tuple[bytes, bytes]], partition: int) -> None:
    producer = KafkaProducer(**client_kwargs(p.settings), acks="all")
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


@pytest.mark.parametrize("store", STORES)
def test_a_changelog_record_the_store_cannot_read_stops_the_worker_naming_it(
        pipeline: Callable[..., Pipeline], store: str) -> None:
    p = _stopped_after_first_start(pipeline())
    topic = StreamsSettings(app_id=p.app_id, topic_prefix=p.prefix).state_topic(store)
    _produce(p, topic, [(b"good-key", VALID[store]), (b"bad-key", b"\xff not json")], partition=3)
    # Started by hand: the harness's start_worker waits for a worker that serves its metrics.
    p.metrics_ports.setdefault("worker", free_port())
    (cwd := p.procs.run.parent / "worker-cwd").mkdir(parents=True, exist_ok=True)
    p.procs.start("worker", [sys.executable, "-m", "streams"], env=p.env("worker"), cwd=cwd)
    wait_until(lambda: p.procs.pid("worker") is None, timeout=90, what="the worker stopping on the bad record")
    log = p.log()
    assert "StateRecoveryError" in log or "cannot be taken up" in log, log[-3000:]
    assert f"topic='{topic}'" in log and "partition=3" in log and "offset=1" in log, log[-3000:]


def test_every_store_is_restored_after_a_restart(pipeline: Callable[..., Pipeline]) -> None:
    p = _stopped_after_first_start(pipeline())
    settings = StreamsSettings(app_id=p.app_id, topic_prefix=p.prefix)
    for store in STORES:
        _produce(p, settings.state_topic(store), [(f"k{i}".encode(), VALID[store]) for i in range(50)]
                 + [(b"k0", None)], partition=1)  # type: ignore[list-item]
    p.start_worker()
    for store in STORES:
        wait_for(lambda s=store: metric(p.metrics() or {}, "truyvet_streams_state_keys", store=s) == 49,
                 timeout=60, what=f"{store}: 49 keys restored (50 written, one deleted)")


def test_windows_and_alert_memory_past_their_follow_up_are_pruned(pipeline: Callable[..., Pipeline]) -> None:
    """The matcher's stores do not grow for ever: what is past its case's follow-up goes at the sweep."""
    p = _stopped_after_first_start(pipeline(extra_env={"STREAMS_MATCHING_SWEEP_SECONDS": "1"}))
    settings = StreamsSettings(app_id=p.app_id, topic_prefix=p.prefix)
    now = int(time.time())

    def window(expires_at: int) -> dict[str, object]:
        return ExposureWindow(case_id="c1", case_person_id="pc", generation=1, venue_id="v1", visit_id=f"i{expires_at}",
                              t_in=now - 7200, t_out=now - 3600, window=3600, min_overlap=0, case_end=now - 3600,
                              expires_at=expires_at).model_dump()

    _produce(p, settings.state_topic("exposure-windows"),
             [(b"v1", orjson.dumps([window(now - 60), window(now + 86400)])), (b"v2", orjson.dumps([window(now - 1)]))],
             partition=2)
    _produce(p, settings.state_topic("alerted"), [(b"al_old", b"%d" % (now - 60)), (b"al_live", b"%d" % (now + 86400))],
             partition=2)
    p.start_worker()
    for store, left in (("exposure-windows", 1), ("alerted", 1)):
        wait_for(lambda s=store, n=left: metric(p.metrics() or {}, "truyvet_streams_state_keys", store=s) == n,
                 timeout=60, what=f"{store}: only what is still followed up is kept")
    assert metric(p.metrics() or {}, "truyvet_alerts_windows_expired_total") == 2
    assert metric(p.metrics() or {}, "truyvet_alerts_dedup_expired_total") == 1
