"""The worker's per-person state is bounded: people with no scan within the horizon are forgotten."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.streams.harness import Pipeline, as_map, metric, stay_function, wait_for
from tests.unit.streams.reference import reference_visits
from tests.unit.streams.scenarios import generate, make_venues

pytestmark = pytest.mark.integration


def test_state_of_people_without_recent_scans_expires(pipeline: Callable[..., Pipeline]) -> None:
    rng = random.Random(11)
    venues = make_venues(rng, 10)
    start = int((datetime.now(UTC) - timedelta(days=4)).timestamp())  # all older than the 72 h horizon
    scans = generate(rng, persons=30, venues=venues, start=start, visits_per_person=4)
    p = pipeline(extra_env={"STREAMS_STATE_SWEEP_SECONDS": "1"})
    p.create(venues)
    p.start_worker()
    p.produce(scans)
    p.wait_caught_up()
    assert as_map(p.visits()) == reference_visits(scans, stay_for=stay_function(venues))

    def forgotten() -> bool:
        samples = p.metrics() or {}
        return (metric(samples, "truyvet_streams_states_expired_total") == 30
                and "truyvet_streams_people_in_state" in samples
                and metric(samples, "truyvet_streams_people_in_state") == 0)

    wait_for(forgotten, timeout=60, what="all 30 people's state expired")
    assert p.procs.pid("worker") is not None, p.log()[-3000:]
