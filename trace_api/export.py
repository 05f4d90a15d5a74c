"""CSV export of a case's contacts, one row per exposure, with spreadsheet formulas neutralised.

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is read as a formula by
spreadsheet programs (the luca export lesson); such cells get a leading apostrophe, which makes the
spreadsheet show the text as typed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return out.getvalue()
