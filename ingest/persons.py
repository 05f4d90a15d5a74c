"""Personal details from CCCD cards, kept in the restricted ``person_details`` table by pseudonym.

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


class PersonDetailsStore:
    """Writes card details (one row per pseudonym; a changed card writes a newer row)."""

    def __init__(self, db: Database, *, units_refresh_seconds: float = 60.0) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}
        self._matcher: WardMatcher | None = None
        self._matcher_at = 0.0
        self._refresh = units_refresh_seconds

    def _wards(self) -> WardMatcher:
        if self._matcher is None or time.monotonic() - self._matcher_at > self._refresh:
            rows = self._db.execute("SELECT code, name, level, parent_code FROM units FINAL")
            self._matcher = WardMatcher(Unit(*map(str, r)) for r in rows)
            self._matcher_at = time.monotonic()
        return self._matcher

    def save(self, cards: Sequence[tuple[str, CccdCard]]) -> int:
        """Store ``(pseudonym, card)`` details not stored identically before; return rows written."""
        if not cards:
            return 0
        now = datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            wards = self._wards()
            rows: list[tuple[object, ...]] = []
            for person_id, card in cards:
                row = (person_id, card.full_name, card.birth_date.isoformat(), card.sex, card.address,
                       wards.ward_of(card.address), "cccd")
                fingerprint = hash(row)
                if self._written.get(person_id) == fingerprint:
                    continue
                rows.append((*row, now))
                self._written[person_id] = fingerprint
            if len(self._written) > 1_000_000:
                self._written.clear()
            try:
                return self._db.insert("person_details", COLUMNS, rows)
            except Exception:
                for written in rows:
                    self._written.pop(str(written[0]), None)
                raise
