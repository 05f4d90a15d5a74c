"""Administrative units (province, district, ward, commune) loaded from CSV; never hard-coded."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from truyvet.schema.db import Database

LEVELS = {"province", "district", "ward", "commune"}


class UnitsError(ValueError):
    pass


def read_units(path: Path) -> list[tuple[str, str, str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"code", "name", "level", "parent_code"} - set(reader.fieldnames or [])
        if missing:
            raise UnitsError(f"{path}: missing columns {sorted(missing)}")
        rows = []
        for line, rec in enumerate(reader, start=2):
            code, name, level = rec["code"].strip(), rec["name"].strip(), rec["level"].strip()
            if not code or not name:
                raise UnitsError(f"{path}:{line}: code and name are required")
            if level not in LEVELS:
                raise UnitsError(f"{path}:{line}: level {level!r} is not one of {sorted(LEVELS)}")
            rows.append((code, name, level, (rec["parent_code"] or "").strip()))
    return rows


def load_units(db: Database, path: Path) -> int:
    """Insert the file's units; a unit with an existing code replaces it (ReplacingMergeTree)."""
    rows = read_units(path)
    now = datetime.now(UTC).replace(microsecond=0)
    return db.insert("units", ["code", "name", "level", "parent_code", "loaded_at"], [(*r, now) for r in rows])
