"""Generated scan scenarios for the stream tests: in order, shuffled, resends, near-duplicates, late scans.

Pure Python and seeded, so a failing scenario can be replayed; the integration tests produce these
scans to Kafka and compare ClickHouse with :func:`tests.unit.streams.reference.reference_visits`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

from tests.unit.streams.reference import HOUR, MINUTE, RefScan


@dataclass(frozen=True)
class VenueSpec:
    venue_id: str
    category: str
    default_stay_minutes: int  # 0: the category's stay


VENUE_CATEGORIES = ("food_drink", "bar", "office", "market_shop", "gym", "tourist_site", "school")


def make_venues(rng: random.Random, n: int, prefix: str = "v") -> list[VenueSpec]:
    venues = []
    for i in range(n):
        own = rng.choice((0, 0, 20, 45, 90, 240))
        venues.append(VenueSpec(f"{prefix}{i:05d}", VENUE_CATEGORIES[i % len(VENUE_CATEGORIES)], own))
    return venues


def person_scans(rng: random.Random, person: str, venues: Sequence[VenueSpec], start: int, n_visits: int,
                 *, with_dups: bool = True) -> list[RefScan]:
    """One person's day: ins, outs (often missing), cuts, orphan outs, near-duplicates, in time order."""
    scans: list[RefScan] = []
    t = start + rng.randrange(0, 2 * HOUR)

    def add(venue: str, at: int, direction: str) -> None:
        scans.append(RefScan(str(uuid.UUID(int=rng.getrandbits(128), version=4)), person, venue, at, direction))

    # A few favourite venues make dedup windows and repeated venues likely.
    favourites = rng.sample(list(venues), k=min(len(venues), 4))
    for _ in range(n_visits):
        venue = rng.choice(favourites if rng.random() < 0.6 else venues).venue_id
        kind = rng.random()
        if kind < 0.1:  # orphan out
            add(venue, t, "out")
        else:
            add(venue, t, "in")
            if kind < 0.55:  # an out, sometimes after the maximum stay
                stay = rng.choice((5 * MINUTE, 30 * MINUTE, 2 * HOUR, 11 * HOUR, 13 * HOUR))
                add(venue, t + stay + rng.randrange(0, 300), "out")
        if with_dups and rng.random() < 0.15:  # near-duplicate: same venue and direction soon after
            gap = rng.choice((0, 60, 9 * MINUTE, 10 * MINUTE, 10 * MINUTE + 1, 15 * MINUTE))
            add(venue, t + gap, scans[-1].direction)
        t += rng.choice((5 * MINUTE, 20 * MINUTE, 50 * MINUTE, 2 * HOUR, 5 * HOUR))
    return scans


def generate(rng: random.Random, *, persons: int, venues: Sequence[VenueSpec], start: int, visits_per_person: int,
             prefix: str = "p") -> list[RefScan]:
    """Scans of ``persons`` people in time order (the in-order arrival)."""
    scans: list[RefScan] = []
    for i in range(persons):
        scans.extend(person_scans(rng, f"{prefix}{i:06d}", venues, start, visits_per_person))
    scans.sort(key=lambda s: s.t)
    return scans


def shuffled(rng: random.Random, scans: Sequence[RefScan]) -> list[RefScan]:
    out = list(scans)
    rng.shuffle(out)
    return out


def with_resends(rng: random.Random, scans: Sequence[RefScan], fraction: float = 0.1) -> list[RefScan]:
    """Exact copies of some scans (same scan_id) arriving again, somewhere after the first copy."""
    keyed = [(float(i), s) for i, s in enumerate(scans)]
    n = len(scans)
    for i in rng.sample(range(n), k=int(n * fraction)):
        keyed.append((rng.uniform(i + 0.5, n), scans[i]))
    keyed.sort(key=lambda pair: pair[0])
    return [s for _, s in keyed]


def with_late(rng: random.Random, scans: Sequence[RefScan], fraction: float = 0.2) -> list[RefScan]:
    """Offline uploads: a fraction of scans arrives after all the others."""
    late = set(rng.sample(range(len(scans)), k=int(len(scans) * fraction)))
    return [s for i, s in enumerate(scans) if i not in late] + [scans[i] for i in sorted(late)]


def renamed(scans: Sequence[RefScan], prefix: str) -> list[RefScan]:
    """The same scenario for other people (so several scenarios can share one run)."""
    ids: dict[str, str] = {}
    out = []
    for s in scans:
        new_id = ids.setdefault(s.scan_id, str(uuid.uuid5(uuid.NAMESPACE_OID, prefix + s.scan_id)))
        out.append(replace(s, scan_id=new_id, person_id=prefix + s.person_id))
    return out


def scan_json(s: RefScan) -> bytes:
    """The scan as any Kafka client may produce it to ``scans`` (docs/api.md)."""
    return orjson.dumps({"scan_id": s.scan_id, "scanned_at": datetime.fromtimestamp(s.t, UTC).isoformat(),
                         "direction": s.direction, "venue_id": s.venue_id, "person_id": s.person_id})
