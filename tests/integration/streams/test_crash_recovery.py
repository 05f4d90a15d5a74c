"""Exactly-once effect in ClickHouse across failures: ``kill -9`` of the worker, ClickHouse stopped.

Both tests produce a generated run (late scans and resends included) straight to Kafka, break
something in the middle, and then require that ClickHouse holds exactly the reference visits:
none missing, none doubled, nothing stale.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.streams.harness import Pipeline, as_map, assert_same, metric, stay_function, wait_for
from tests.unit.streams.reference import RefScan, RefVisit, reference_visits
from tests.unit.streams.scenarios import VenueSpec, generate, make_venues, with_late, with_resends
from truyvet.secretstore import secrets_dir
from truyvet.settings import CommonSettings
from truyvet.stack.clickhouse import ClickHouseNode
from truyvet.stack.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILL_SCANS = int(os.environ.get("STREAMS_TEST_KILL_SCANS", "200000"))
OUTAGE_SCANS = int(os.environ.get("STREAMS_TEST_OUTAGE_SCANS", "30000"))
OUTAGE_SECONDS = float(os.environ.get("STREAMS_TEST_OUTAGE_SECONDS", "30"))
SCANS_PER_PERSON = 13  # about what person_scans() makes with 8 visits


def run_of(seed: int, n_scans: int) -> tuple[list[VenueSpec], list[RefScan], dict[str, RefVisit]]:
    rng = random.Random(seed)
    venues = make_venues(rng, 300)
    start = int((datetime.now(UTC) - timedelta(days=4)).timestamp())
    scans = generate(rng, persons=max(1, n_scans // SCANS_PER_PERSON), venues=venues, start=start,
                     visits_per_person=8)
    arrivals = with_resends(rng, with_late(rng, scans, 0.1), 0.02)
    return venues, arrivals, reference_visits(arrivals, stay_for=stay_function(venues))


def row_count(p: Pipeline) -> int:
    db = p.db()
    try:
        return int(db.execute("SELECT count() FROM visits")[0][0])
    finally:
        db.close()


def produce_in_background(p: Pipeline, arrivals: list[RefScan]) -> threading.Thread:
    thread = threading.Thread(target=p.produce, args=(arrivals,), daemon=True)
    thread.start()
    return thread


def test_kill_9_mid_run_then_restart_gives_exactly_the_reference(pipeline: Callable[..., Pipeline]) -> None:
    venues, arrivals, expected = run_of(42, KILL_SCANS)
    p = pipeline()
    p.create(venues)
    p.start_worker()
    producing = produce_in_background(p, arrivals)

    wait_for(lambda: row_count(p) >= len(expected) // 3, timeout=600, what="a third of the visits written")
    p.kill()
    rows_at_kill = row_count(p)
    producing.join(timeout=300)
    assert not producing.is_alive()
    assert p.lag() > 0, "the worker had finished before the kill; the test proves nothing"

    p.start_worker()
    p.wait_caught_up(timeout=300, expected=expected)
    got = as_map(p.visits())
    assert_same(p, got, expected, arrivals)
    assert as_map(p.visits("visits_by_venue")) == expected
    assert rows_at_kill < row_count(p)


def test_clickhouse_stopped_mid_run_then_back_gives_exactly_the_reference(
    pipeline: Callable[..., Pipeline], infra: CommonSettings
) -> None:
    """Own ClickHouse on free ports with its own data dir: the shared one is never touched."""
    own = infra.model_copy(update={
        "data_dir": infra.data_dir / "test-runs" / "streams-clickhouse" / f"ch{os.getpid()}-{time.time_ns()}",
        "clickhouse_port": free_port(), "clickhouse_http_port": free_port()})
    # The pipeline connects with the session's secrets: the own server gets the same accounts.
    shutil.copytree(secrets_dir(infra.data_dir), secrets_dir(own.data_dir))
    node = ClickHouseNode(own)
    node.start()
    try:
        venues, arrivals, expected = run_of(43, OUTAGE_SCANS)
        p = pipeline(clickhouse_port=own.clickhouse_port)
        p.create(venues)
        node.allow_database(p.settings.clickhouse_database, wait=True)  # the worker's account: into this database
        p.start_worker()
        producing = produce_in_background(p, arrivals)
        wait_for(lambda: row_count(p) > 0, timeout=300, what="first visits written")

        node.stop()
        down_until = time.monotonic() + OUTAGE_SECONDS
        wait_for(lambda: metric(p.metrics() or {}, "truyvet_streams_clickhouse_retries_total") > 0, timeout=60,
                 what="the worker noticing ClickHouse is down")
        remaining = down_until - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)  # the outage itself is the scenario; nothing to poll for
        assert p.procs.pid("worker") is not None, f"worker died during the outage:\n{p.log()[-3000:]}"
        node.start()

        producing.join(timeout=300)
        p.wait_caught_up(timeout=600, expected=expected)
        got = as_map(p.visits())
        assert_same(p, got, expected, arrivals)
        assert as_map(p.visits("visits_by_venue")) == expected
    finally:
        node.stop()
        shutil.rmtree(own.data_dir, ignore_errors=True)
