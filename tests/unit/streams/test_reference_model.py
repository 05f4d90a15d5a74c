"""The worker's visit logic (streams/processor.py) against the independent reference model.

Replays generated scenarios through :func:`apply_batch` (record by record, or per person and batch),
writes the rows to a
ClickHouse stand-in with ReplacingMergeTree semantics (highest version wins), and simulates crashes:
a batch processed but never written, a batch written but not committed, and a changelog that kept
or lost the state of the lost batch. The end result must equal the reference in every case.
"""

from __future__ import annotations

import random
import zlib

import pytest

from streams.processor import PersonState, VisitRules, apply_batch
from streams.visits import Scan
from tests.unit.streams.reference import HOUR, MINUTE, RefScan, reference_visits
from tests.unit.streams.scenarios import generate, make_venues, shuffled, with_late, with_resends

START = 1_780_000_000


class FakeReplacingTable:
    """visit_id -> (version, deleted, row); keeps the highest version; same version must mean same row."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, bool, tuple[object, ...]]] = {}

    def insert(self, rows: list[tuple[str, int, bool, tuple[object, ...]]]) -> None:
        for visit_id, version, deleted, row in rows:
            old = self.rows.get(visit_id)
            if old is not None and old[0] == version:
                assert (old[1], old[2]) == (deleted, row), f"version {version} of {visit_id} written twice differently"
            if old is None or version >= old[0]:
                self.rows[visit_id] = (version, deleted, row)

    def live(self) -> dict[str, tuple[object, ...]]:
        return {k: row for k, (_, deleted, row) in self.rows.items() if not deleted}


def run(records: list[RefScan], rules: VisitRules, rng: random.Random, *, crash_rate: float,
        per_batch: bool) -> FakeReplacingTable:
    table = FakeReplacingTable()
    changelog: dict[str, dict] = {}  # person -> last flushed state
    committed = 0
    position = 0
    while position < len(records) or committed < len(records):
        position = committed  # (re)start from the committed offset with state from the changelog
        while position < len(records):
            batch = range(position, min(len(records), position + rng.randint(1, 40)))
            states: dict[str, PersonState] = {}
            rows = []
            groups: dict[str, list[tuple[int, Scan]]] = {}
            for offset in batch:
                r = records[offset]
                groups.setdefault(r.person_id if per_batch else f"{r.person_id}@{offset}", []).append(
                    (offset, Scan(r.t, r.direction, r.venue_id, r.scan_id)))
            for group in groups.values():
                person = records[group[0][0]].person_id
                state = states.setdefault(person, PersonState.from_json(changelog.get(person)))
                for (offset, _), outcome in zip(group, apply_batch(state, group, rules), strict=True):
                    for v in outcome.upserts:
                        rows.append((v.visit_id, offset + 1, False, (person, v.venue_id, v.t_in, v.t_out)))
                    for v in outcome.deletes:
                        rows.append((v.visit_id, offset + 1, True, (person, v.venue_id, v.t_in, v.t_out)))
            fate = rng.random()
            for person, state in states.items():  # changelog: flushed, or partly lost in a crash
                if fate >= crash_rate or rng.random() < 0.5:
                    changelog[person] = state.to_json()
            if fate < crash_rate / 2:
                break  # crash before the ClickHouse write: nothing written, nothing committed
            table.insert(rows)
            if fate < crash_rate:
                break  # crash after the write, before the offset commit
            committed = position = batch.stop
    return table


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("arrival", ["in_order", "shuffled", "resends", "late"])
@pytest.mark.parametrize("crash_rate", [0.0, 0.3])
@pytest.mark.parametrize("per_batch", [False, True], ids=["per-record", "per-batch"])
def test_processor_matches_reference(seed: int, arrival: str, crash_rate: float, per_batch: bool) -> None:
    rng = random.Random(seed * 1000 + zlib.crc32(arrival.encode()) % 1000)
    venues = make_venues(rng, 12)
    stays = {v.venue_id: (v.default_stay_minutes or 60) * MINUTE for v in venues}
    scans = generate(rng, persons=8, venues=venues, start=START, visits_per_person=12)
    records = {"in_order": scans, "shuffled": shuffled(rng, scans),
               "resends": with_resends(rng, shuffled(rng, scans), 0.3), "late": with_late(rng, scans, 0.3)}[arrival]
    rules = VisitRules(stay_for=stays.__getitem__, max_stay=12 * HOUR, dedup_window=10 * MINUTE, horizon=72 * HOUR)
    table = run(records, rules, rng, crash_rate=crash_rate, per_batch=per_batch)
    expected = {k: (v.person_id, v.venue_id, v.t_in, v.t_out)
                for k, v in reference_visits(records, stay_for=stays.__getitem__).items()}
    assert table.live() == expected


def test_reference_agrees_with_hand_cases() -> None:
    stay = {"A": 60 * MINUTE, "B": 60 * MINUTE}.__getitem__
    got = reference_visits([RefScan("1", "p", "A", 0, "in"), RefScan("2", "p", "B", 20 * MINUTE, "in"),
                            RefScan("3", "p", "A", 40 * MINUTE, "out")], stay_for=stay)
    assert {(v.venue_id, v.t_in, v.t_out) for v in got.values()} == {
        ("A", 0, 20 * MINUTE), ("B", 20 * MINUTE, 80 * MINUTE), ("A", -20 * MINUTE, 40 * MINUTE)}
