"""A batch of ``scans`` records turned into visit rows: parse → check → visits → rows and notices.

A plain class, no Kafka, faust or ClickHouse in it (``tests/unit/streams/test_visit_batch.py`` drives it
with records made in the test): the worker (streams/visits_worker.py) fetches the records, looks the
venues up, then writes what :meth:`VisitBatch.apply` returns and confirms it before committing.

Per record: the scan is parsed and checked (truyvet.scan: the one validation HTTP ingest uses too),
then either dead-lettered with its reason, produced again keyed by its person when it sits on another
partition than its person's (unkeyed producers such as kcat without ``-K``), or added to its person's
state, which yields the visit changes that record makes (streams/processor.py), versioned by its
offset + 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.processor import PersonState, VisitRules, apply_batch
from streams.sink import visit_rows
from streams.store import ChangelogStore
from streams.visits import Scan
from truyvet.events import DeadLetter
from truyvet.partitioning import partition_for
from truyvet.scan import ParsedScan, Rejected, parse_scan

logger = logging.getLogger(__name__)

FUTURE_SECONDS = 5 * 60


class Parsed(NamedTuple):
    record: Any  # topic, partition, offset, key, value
    scan: ParsedScan | Rejected


@dataclass
class BatchResult:
    """What a batch makes: to write, to produce, and to count."""

    rows: list[tuple[object, ...]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (key, DeadLetter JSON)
    rekeyed: list[tuple[bytes, bytes]] = field(default_factory=list)  # (person key, original value)
    dead_by_code: dict[str, int] = field(default_factory=dict)
    consumed: int = 0
    window_duplicates: int = 0
    id_duplicates: int = 0
    rewound: int = 0


def dead_letter(raw: bytes | None, reason: str, code: str, record: Any) -> bytes:
    """The dead letter of a record (``record``: anything with topic, partition and offset; ``raw`` None for a
    record without a value)."""
    return DeadLetter(reason=reason, error_code=code, raw=raw.decode("utf-8", errors="replace") if raw else "",
                      topic=record.topic, partition=record.partition, offset=record.offset).to_json()


class VisitBatch:
    """Turns ``scans`` records into visit rows against the persons' states in ``store``.

    :param known_venue: whether a venue id is registered (looked up before :meth:`apply`).
    :param partitions: partition count of ``scans`` (a person's home partition).
    """

    def __init__(self, *, rules: VisitRules, store: ChangelogStore, known_venue: Callable[[str], bool],
                 partitions: int, retention_seconds: int,
                 person_card: Callable[[str], str] | None = None) -> None:
        self.rules = rules
        self.person_card = person_card  # printed cards' person_qr (truyvet/cards.py), None: refused
        self.store = store
        self.known_venue = known_venue
        self.partitions = partitions
        self.retention_seconds = retention_seconds
        # Parsed states by person, valid while the store still holds the very bytes object written
        # with them (a restore replaces it, and the state is parsed again).
        self._parsed: dict[bytes, tuple[bytes, PersonState]] = {}

    def parse(self, records: list[Any]) -> list[Parsed]:
        return [Parsed(r, self._parse_one(r)) for r in records]

    def _parse_one(self, record: Any) -> ParsedScan | Rejected:
        """A record that cannot even be parsed is dead-lettered too, never a batch that fails for ever."""
        if record.value is None:
            return Rejected("record without a value")
        try:
            return parse_scan(record.value, self.person_card)
        except Exception as exc:  # noqa: BLE001 - any failure to read one record is that record's fault
            logger.exception("scan at %s[%s]@%s unreadable", record.topic, record.partition, record.offset)
            return Rejected(f"unreadable record ({type(exc).__name__})")

    @staticmethod
    def venues_named(parsed: list[Parsed]) -> set[str]:
        return {p.scan.scan.venue_id for p in parsed if type(p.scan) is ParsedScan}

    def state_venues(self, parsed: list[Parsed]) -> set[str]:
        """Venues in the stored states of the batch's people: their default stays shape the visits. A state
        parsed here is kept for :meth:`apply` (after a restart, every person's first batch needs it)."""
        venues: set[str] = set()
        for p in parsed:
            if type(p.scan) is not ParsedScan:
                continue
            key = p.scan.person_id.encode()
            value = self.store.partitions.get(p.record.partition, {}).get(key)
            cached = self._parsed.get(key)
            if value is not None and (cached is None or cached[0] is not value):
                state = PersonState.from_bytes(value)
                self._parsed[key] = (value, state)
                venues.update(s.venue_id for s in state.scans.values())
        return venues

    def check(self, parsed: ParsedScan | Rejected, now: int) -> tuple[str, str]:
        """("", "") for a scan to process, else (reason, code)."""
        if isinstance(parsed, Rejected):
            return parsed.reason, "invalid_scan"
        t = parsed.scan.t
        if t > now + FUTURE_SECONDS:
            return "scanned_at: more than 5 minutes in the future", "future"
        if t < now - self.retention_seconds:
            return "scanned_at: older than the retention period", "too_old"
        if not self.known_venue(parsed.scan.venue_id):
            return "venue_id: unknown venue (not registered)", "unknown_venue"
        return "", ""

    def apply(self, parsed: list[Parsed], now: int) -> BatchResult:
        """Check, group by person, add to the states (written to the store), and make the rows."""
        result = BatchResult()
        groups: dict[tuple[int, bytes], list[tuple[int, Scan]]] = {}
        for p in parsed:
            record, scan = p.record, p.scan
            reason, code = self.check(scan, now)
            if reason:
                result.consumed += 1
                result.dead_by_code[code] = result.dead_by_code.get(code, 0) + 1
                result.dead_letters.append((record.key, dead_letter(record.value, reason, code, record)))
                logger.info("dead-lettering scan at %s[%s]@%s: %s", record.topic, record.partition,
                            record.offset, reason)
                continue
            assert isinstance(scan, ParsedScan)
            if record.partition != partition_for(scan.person_id, self.partitions):
                result.rekeyed.append((scan.person_id.encode(), record.value))
                continue
            result.consumed += 1
            groups.setdefault((record.partition, scan.person_id.encode()), []).append((record.offset, scan.scan))
        for (partition, key), records in groups.items():
            state = self._state_of(partition, key)
            person_id = key.decode()
            for (offset, _), outcome in zip(records, apply_batch(state, records, self.rules), strict=True):
                if outcome.duplicate == "window":
                    result.window_duplicates += 1
                elif outcome.duplicate:
                    result.id_duplicates += 1
                result.rewound += outcome.rewound
                if outcome.upserts:
                    result.rows += visit_rows(person_id, outcome.upserts, offset + 1, False, now)
                if outcome.deletes:
                    result.rows += visit_rows(person_id, outcome.deletes, offset + 1, True, now)
            value = state.to_bytes()
            self.store.put(partition, key, value)
            self._parsed[key] = (value, state)
        return result

    def _state_of(self, partition: int, key: bytes) -> PersonState:
        value = self.store.get(partition, key)
        cached = self._parsed.get(key)
        if cached is not None and value is not None and cached[0] is value:
            return cached[1]
        self._parsed.pop(key, None)
        return PersonState.from_bytes(value)

    def expire(self, partition: int, cutoff: int) -> int:
        """Forget the people of ``partition`` whose newest scan is older than ``cutoff``; return how many.

        Cached timelines (~4 KB a person, rebuilt at the person's next scan) are dropped too, which
        bounds their memory to the people scanned between sweeps.
        """
        expired = 0
        for key, value in self.store.items(partition):
            cached = self._parsed.get(key)
            state = cached[1] if cached is not None and cached[0] is value else PersonState.from_bytes(value)
            if not state.scans or max(s.t for s in state.scans.values()) < cutoff:
                self.store.delete(partition, key)
                self._parsed.pop(key, None)
                expired += 1
            elif cached is not None:
                cached[1].timeline = None
        return expired

    def forget(self, partitions: set[int]) -> None:
        """Drop cached states of revoked partitions."""
        for key in [k for k in self._parsed if partition_for(k.decode(), self.partitions) in partitions]:
            del self._parsed[key]
