"""Exports staff open in a spreadsheet: CSV (UTF-8 with a BOM, so Excel reads the Vietnamese) and xlsx,
Vietnamese column headers, times in Vietnam's local time with the offset (docs/api.md, "Exports").

Formula text is neutralised in both (the luca export lesson): a spreadsheet reads a cell that starts
with ``=``, ``+``, ``-``, ``@``, tab or carriage return as a formula.

- CSV: such a cell gets a leading apostrophe, which makes the spreadsheet show the text as typed. A
  spreadsheet set to a locale whose list separator is ``;`` splits cells there (and at ``,`` in
  others), so a fragment after a ``;`` or ``,`` inside a cell that would start a formula gets the
  apostrophe too (``a;=1+1`` is written ``a;'=1+1``).
- xlsx (XlsxWriter): every text is a string cell (never a formula), and a text that starts like a
  formula gets the "quote prefix" style, Excel's own mark for "typed with a leading apostrophe": it
  shows as typed and stays text when edited.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import xlsxwriter
from fastapi.responses import Response

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
BOM = "\ufeff"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A formula start right after a list separator (optionally after spaces) inside a cell.
_AFTER_SEPARATOR = re.compile(r"([;,][ ]*)(?=[=+\-@\t\r])")


def neutralise(value: object) -> str:
    """The CSV text of a cell: formula starts, also after a ``;`` or ``,``, behind an apostrophe."""
    text = "" if value is None else str(value)
    text = _AFTER_SEPARATOR.sub(r"\1'", text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def local_time(value: datetime | int | str | None) -> str:
    """RFC 3339 in Vietnam's time with its offset (``2026-12-02T13:05:00+07:00``); ``""`` for none.

    Accepts an aware datetime, epoch seconds, or the API's UTC text (``...Z``).
    """
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM).replace(microsecond=0).isoformat()


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV text (no BOM); :func:`csv_bytes` is what exports send."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return out.getvalue()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    return (BOM + to_csv(header, rows)).encode("utf-8")


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[object]], *, sheet: str = "Dữ liệu") -> bytes:
    """One sheet: a bold header row, then the rows; numbers stay numbers, every text is a string cell."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                     "strings_to_numbers": False})
    bold = book.add_format({"bold": True})
    quoted = book.add_format({"quote_prefix": True})
    ws = book.add_worksheet(sheet[:31])
    widths = [len(str(h)) for h in header]
    for c, h in enumerate(header):
        ws.write_string(0, c, str(h), bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, bool) or value is None:
                text = "" if value is None else str(value)
            elif isinstance(value, int | float):
                ws.write_number(r, c, value)
                continue
            else:
                text = str(value)
            ws.write_string(r, c, text, quoted if text.startswith(FORMULA_STARTS) else None)
            if c < len(widths):
                widths[c] = max(widths[c], min(len(text), 60))
    for c, w in enumerate(widths):
        ws.set_column(c, c, w + 2)
    ws.freeze_panes(1, 0)
    book.close()
    return out.getvalue()


@dataclass(frozen=True)
class Table:
    """What an export holds: Vietnamese header, rows (times already local), the file's base name."""

    header: Sequence[str]
    rows: Sequence[Sequence[object]]
    name: str


def response(table: Table, fmt: str) -> Response:
    """The download in ``fmt`` (``csv`` or ``xlsx``)."""
    if fmt == "xlsx":
        return Response(xlsx_bytes(table.header, table.rows), media_type=XLSX_MEDIA,
                        headers={"Content-Disposition": f'attachment; filename="{table.name}.xlsx"'})
    return Response(csv_bytes(table.header, table.rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{table.name}.csv"'})
