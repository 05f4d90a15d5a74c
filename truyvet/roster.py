"""The roster: establishments that must scan (docs/api.md ``truyvet roster load``), per ward and category.

A file holds any number of wards; loading it replaces the roster of each ward it names (a ward
office sends its whole list again when it changes), so loading the same file twice is harmless.
Identical lines (same ward, category, name and address) are one establishment.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from truyvet.events import Category
from truyvet.exceptions import TruyvetError
from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

COLUMNS = ("ward_code", "category", "name", "address")

def current_roster(db: Database, wards: tuple[str, ...] | None = None) -> list[Establishment]:
    """The establishments of the wards' latest loads (all wards for ``None``), in file order per ward."""
    where, params = "", {}
    if wards is not None:
        if not wards:
            return []
        where, params = " WHERE ward_code IN %(wards)s", {"wards": tuple(wards)}
    rows = db.execute(f"SELECT ward_code, category, name, address FROM {CURRENT}{where} "
                      "ORDER BY ward_code, category, name, address", params)
    return [Establishment(str(w), Category(str(c)), str(n), str(a)) for w, c, n, a in rows]


# The current roster: per ward, the rows of its latest load (a tuple IN works on 18.16 and current).
CURRENT = ("(SELECT ward_code, category, name, address FROM roster "
           "WHERE (ward_code, load_id) IN (SELECT ward_code, max(load_id) FROM roster GROUP BY ward_code))")


class RosterError(TruyvetError):
    """A roster file that cannot be loaded (missing column, unknown category or ward)."""


@dataclass(frozen=True)
class Establishment:
    ward_code: str
    category: Category
    name: str
    address: str

    @cached_property
    def roster_id(self) -> str:  # computed once: reports ask for it per row and per day
        return roster_id(self.ward_code, self.name, self.address)


_PUNCT = re.compile(r"[^0-9a-z ]+")


def match_key(text: str) -> str:
    """The form names and addresses are compared in (docs/compliance.md): without diacritics
    (đ is d), case, punctuation or extra spaces. "Quán Phở  Đức-Xuân." and "quan pho duc xuan" are equal."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(_PUNCT.sub(" ", bare).split())


def roster_id(ward_code: str, name: str, address: str) -> str:
    """A roster row's stable id: the same establishment keeps it across loads of its ward's list, and a
    spelling that only differs in diacritics, case, punctuation or spaces keeps it too."""
    key = "|".join((ward_code.strip(), match_key(name), match_key(address)))
    return "r" + hashlib.sha256(key.encode()).hexdigest()[:15]


def read_roster(path: Path) -> list[Establishment]:
    """Parse and validate a roster CSV (UTF-8, with or without BOM); errors name the line."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(COLUMNS) - {(f or "").strip() for f in reader.fieldnames or []}
        if missing:
            raise RosterError(f"{path}: missing columns {sorted(missing)}", path=str(path))
        seen: set[Establishment] = set()
        rows: list[Establishment] = []
        for line, rec in enumerate(reader, start=2):
            rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items()}
            if not rec["ward_code"] or not rec["name"]:
                raise RosterError(f"{path}:{line}: ward_code and name are required", line=line)
            try:
                category = Category(rec["category"])
            except ValueError:
                raise RosterError(f"{path}:{line}: unknown category {rec['category']!r}", line=line) from None
            item = Establishment(rec["ward_code"], category, rec["name"], rec["address"])
            if item not in seen:
                seen.add(item)
                rows.append(item)
    return rows


def known_wards(db: Database) -> set[str]:
    rows = db.execute("SELECT code FROM units FINAL WHERE level IN ('ward', 'commune')")
    return {str(r[0]) for r in rows}


def load_roster(db: Database, path: Path) -> dict[str, int]:
    """Replace the roster of every ward in ``path``; return establishments loaded per ward.

    Every ward code must be a loaded ward or commune (``truyvet units load`` first).
    """
    rows = read_roster(path)
    unknown = sorted({r.ward_code for r in rows} - known_wards(db))
    if unknown:
        raise RosterError(f"{path}: ward codes not among the loaded wards and communes: {unknown}",
                          path=str(path))
    load_id = time.time_ns()
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("roster", ["ward_code", "load_id", "category", "name", "address", "loaded_at"],
              [(r.ward_code, load_id, r.category.value, r.name, r.address, now) for r in rows])
    per_ward: dict[str, int] = {}
    for r in rows:
        per_ward[r.ward_code] = per_ward.get(r.ward_code, 0) + 1
    logger.info("roster %s loaded: %d establishments in %d wards", path, len(rows), len(per_ward))
    return per_ward
