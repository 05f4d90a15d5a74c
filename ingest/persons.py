"""Personal details from CCCD cards, kept in the restricted ``<db>_personal.person_details`` store by
pseudonym, and the residence ward alone in ``person_wards`` (what the worker's ward rule reads).

The ID number itself is never part of a row. The residence ward is the loaded ward or commune that
the card's permanent address names (``"..., Phường Đức Xuân, Thành phố Bắc Kạn, ..."``), or ``""``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.pseudonym import CccdCard
from truyvet.schema.databases import personal
from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

COLUMNS = ["person_id", "full_name", "birth_date", "sex", "address", "residence_ward_code", "source",
           "updated_at"]
_PREFIXES = ("thị trấn ", "phường ", "xã ", "p. ", "x. ", "tt. ", "p.", "x.")
_LEVEL_PREFIX = re.compile(r"^(tỉnh|thành phố|tp\.?|quận|huyện|thị xã|thị trấn|phường|xã)\s+")


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _bare(name: str) -> str:
    return _LEVEL_PREFIX.sub("", name)


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    level: str
    parent_code: str


class WardMatcher:
    """Finds the ward/commune an address names among the loaded units."""

    def __init__(self, units: Iterable[Unit]) -> None:
        units = list(units)
        self._by_code = {u.code: u for u in units}
        self._wards = [u for u in units if u.level in ("ward", "commune")]

    def ward_of(self, address: str) -> str:
        text = normalize(address)
        segments = [s.strip() for s in text.split(",")]
        full = [u for u in self._wards if _contains(text, normalize(u.name))]
        if not full:
            bare_segments = {_strip_prefix(s) for s in segments}
            full = [u for u in self._wards if _bare(normalize(u.name)) in bare_segments]
        if len(full) > 1:  # same ward name in several districts: the address names the district too
            with_parent = [u for u in full if u.parent_code in self._by_code
                           and _contains(text, _bare(normalize(self._by_code[u.parent_code].name)))]
            full = with_parent or full
        codes = {u.code for u in full}
        if len(codes) == 1:
            return full[0].code
        if full:
            longest = max(full, key=lambda u: len(u.name))
            if sum(len(u.name) == len(longest.name) for u in full) == 1:
                return longest.code
        return ""


def _contains(text: str, name: str) -> bool:
    return re.search(rf"(^|[\s,]){re.escape(name)}($|[\s,])", text) is not None


def _strip_prefix(segment: str) -> str:
    for prefix in _PREFIXES:
        if segment.startswith(prefix):
            return segment[len(prefix):].strip()
    return segment


WARD_COLUMNS = ["person_id", "residence_ward_code", "updated_at"]
CONFLICT_COLUMNS = ["person_id", "full_name", "birth_date", "sex", "address", "residence_ward_code",
                    "stored_ward_code", "reported_by", "received_at"]


def save_details(db: Database, rows: Sequence[Sequence[object]]) -> int:
    """Write personal details (rows of :data:`COLUMNS`): first each person's residence ward into
    ``person_wards`` (so a retry after a failure writes both), then the details into the personal store."""
    if not rows:
        return 0
    db.insert("person_wards", WARD_COLUMNS, [(r[0], r[5], r[7]) for r in rows])
    return db.insert(personal(db.name, "person_details"), COLUMNS, rows)


class PersonDetailsStore:
    """Writes card details: the first write of a pseudonym stands; a card that disagrees with what is stored
    (another name, birth date, sex or address) is kept in ``person_details_conflicts`` for the health
    center of the stored residence ward, never written over the stored details (a device replaying someone's
    card text must not move their ward, their alerts and who may read them).

    Within one process the check and the write hold a lock; two ingest processes receiving the same new
    person's two different cards in the same instant could both write (ReplacingMergeTree then keeps one).
    """

    def __init__(self, db: Database, *, units_refresh_seconds: float = 60.0) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._stored: dict[str, tuple[str, ...]] = {}  # person -> stored details (name, birth, sex, address)
        self._conflicts: set[tuple[str, tuple[str, ...]]] = set()  # kept already by this process
        self._matcher: WardMatcher | None = None
        self._matcher_at = 0.0
        self._refresh = units_refresh_seconds

    def _wards(self) -> WardMatcher:
        if self._matcher is None or time.monotonic() - self._matcher_at > self._refresh:
            rows = self._db.execute("SELECT code, name, level, parent_code FROM units FINAL")
            self._matcher = WardMatcher(Unit(*map(str, r)) for r in rows)
            self._matcher_at = time.monotonic()
        return self._matcher

    def _stored_details(self, persons: set[str]) -> dict[str, tuple[tuple[str, ...], str]]:
        """person -> ((name, birth, sex, address), residence ward) of those already stored."""
        rows = self._db.execute(
            "SELECT person_id, full_name, birth_date, sex, address, residence_ward_code "
            f"FROM {personal(self._db.name, 'person_details')} FINAL WHERE person_id IN %(p)s",
            {"p": tuple(sorted(persons))})
        return {str(r[0]): (tuple(map(str, r[1:5])), str(r[5])) for r in rows}

    def save(self, cards: Sequence[tuple[str, CccdCard]], *, reported_by: str = "") -> tuple[int, int]:
        """Store the details of persons not stored yet; keep disagreeing cards as conflicts.

        :return: (rows written, conflicts kept).
        """
        if not cards:
            return 0, 0
        now = datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            wards = self._wards()
            sent = {p: (card.full_name, card.birth_date.isoformat(), card.sex, card.address) for p, card in cards}
            unknown = {p for p, details in sent.items() if self._stored.get(p) != details}
            stored = self._stored_details(unknown) if unknown else {}
            rows: list[tuple[object, ...]] = []
            conflicts: list[tuple[object, ...]] = []
            for person_id, card in cards:
                details = (card.full_name, card.birth_date.isoformat(), card.sex, card.address)
                if self._stored.get(person_id) == details:
                    continue
                if person_id in stored:
                    first, stored_ward = stored[person_id]
                    if first == details:
                        self._stored[person_id] = details
                    elif (person_id, details) not in self._conflicts:
                        self._conflicts.add((person_id, details))
                        conflicts.append((person_id, *details, wards.ward_of(card.address), stored_ward,
                                          reported_by, now))
                    continue
                # The first card of this person in this batch stands; later different ones are conflicts.
                stored[person_id] = (details, wards.ward_of(card.address))
                self._stored[person_id] = details
                rows.append((person_id, *details, stored[person_id][1], "cccd", now))
            if len(self._stored) > 1_000_000:
                self._stored.clear()
            if len(self._conflicts) > 100_000:
                self._conflicts.clear()
            try:
                if conflicts:
                    self._db.insert(personal(self._db.name, "person_details_conflicts"), CONFLICT_COLUMNS,
                                    conflicts)
                    logger.warning("%d card(s) disagree with stored personal details; kept for the health "
                                   "center to resolve", len(conflicts))
                return save_details(self._db, rows), len(conflicts)
            except Exception:
                for row in rows:
                    self._stored.pop(str(row[0]), None)
                for row in conflicts:
                    self._conflicts.discard((str(row[0]), tuple(map(str, row[1:5]))))
                raise
