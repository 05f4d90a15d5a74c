"""The incremental visit computation (streams/visits.py ``Timeline``, used by ``apply_batch``) gives,
record by record, exactly what recomputing all of a person's visits gives: the same rows to write,
the same duplicates, the same state. Dense scenarios (few venues, equal times, short horizons) make
the cases where an appended scan closes, cuts or duplicates something frequent."""

from __future__ import annotations

import random
import uuid

import pytest

from streams.processor import PersonState, VisitRules, apply_batch
from streams.visits import IN, OUT, Scan, Timeline, person_visits, sort_scans
from tests.unit.streams.reference import HOUR, MINUTE
from tests.unit.streams.scenarios import make_venues, person_scans, shuffled, with_late, with_resends

START = 1_780_000_000


def dense(rng: random.Random, n: int) -> list[Scan]:
    """One person's scans at 3 venues, steps of 0-40 minutes (often the same second), in time order."""
    scans, t = [], START
    for _ in range(n):
        t += rng.choice((0, 0, 60, 5 * MINUTE, 9 * MINUTE, 10 * MINUTE, 11 * MINUTE, 40 * MINUTE, 13 * HOUR))
        scans.append(Scan(t, rng.choice((IN, IN, OUT)), rng.choice("ABC"),
                          str(uuid.UUID(int=rng.getrandbits(128), version=4))))
    return scans


def scenario(rng: random.Random, kind: str) -> list[Scan]:
    if kind == "dense":
        return dense(rng, 120)
    venues = make_venues(rng, 5)
    refs = person_scans(rng, "p", venues, START, 30)
    refs = {"in_order": refs, "late": with_late(rng, refs, 0.2),
            "shuffled": shuffled(rng, refs), "resends": with_resends(rng, refs, 0.2)}[kind]
    return [Scan(r.t, r.direction, r.venue_id, r.scan_id) for r in refs]


def key(outcome) -> tuple:  # noqa: ANN001
    return (sorted(outcome.upserts), sorted(outcome.deletes), outcome.duplicate, outcome.rewound)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("kind", ["dense", "in_order", "late", "shuffled", "resends"])
@pytest.mark.parametrize("horizon_hours", [6, 72])
def test_incremental_outcomes_equal_full_recomputation(seed: int, kind: str, horizon_hours: int) -> None:
    rng = random.Random(seed)
    scans = scenario(rng, kind)
    stays = {v: rng.choice((20, 60, 90)) * MINUTE for v in {s.venue_id for s in scans}}
    rules = VisitRules(stay_for=stays.__getitem__, max_stay=12 * HOUR, dedup_window=10 * MINUTE,
                       horizon=horizon_hours * HOUR)
    fast, full = PersonState(), PersonState()
    position = 0
    while position < len(scans):
        records = [(position + i, s) for i, s in enumerate(scans[position:position + rng.randint(1, 7)])]
        if rng.random() < 0.1:  # the worker restarted: state read back from the changelog
            fast = PersonState.from_bytes(fast.to_bytes())
        got = apply_batch(fast, records, rules)
        want = apply_batch(full, records, rules, incremental=False)
        assert [key(o) for o in got] == [key(o) for o in want], f"records {records}"
        assert fast.to_json() == full.to_json()
        assert fast.timeline is not None
        assert fast.timeline.visits == rules.visits(list(fast.scans.values()))
        position += len(records)


def test_appending_matches_person_visits_after_every_scan() -> None:
    rng = random.Random(7)
    scans = sort_scans(dense(rng, 400))
    timeline = Timeline([], stay_for=lambda _: 60 * MINUTE, max_stay=12 * HOUR, dedup_window=10 * MINUTE)
    for i, scan in enumerate(scans):
        assert timeline.follows(scan)
        timeline.append(scan)
        assert timeline.visits == person_visits(scans[: i + 1], stay_for=lambda _: 60 * MINUTE,
                                                max_stay=12 * HOUR, dedup_window=10 * MINUTE)
