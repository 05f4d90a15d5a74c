"""The ward chairman's compliance list as CSV (UTF-8 with BOM), XLSX and a printable PDF, in Vietnamese.

Cells that a spreadsheet would read as a formula are neutralised (trace_api/export.py) in CSV and XLSX.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fpdf import FPDF

from trace_api.compliance import EstablishmentStatus
from trace_api.export import csv_bytes, xlsx_bytes
from truyvet.posters import CATEGORY_LABELS, new_pdf

STATUS_LABELS = {"not_registered": "Chưa đăng ký", "silent": "Đã đăng ký, không quét", "scanning": "Đang quét"}
HEADER = ["Mã cơ sở", "Mã phường/xã", "Phường/xã", "Loại hình", "Tên cơ sở", "Địa chỉ", "Trạng thái",
          "Mã địa điểm", "Ngày quét gần nhất"]


def _cells(r: EstablishmentStatus, ward_names: dict[str, str]) -> list[object]:
    return [r.roster_id, r.ward_code, ward_names.get(r.ward_code, ""), CATEGORY_LABELS.get(r.category, r.category),
            r.name, r.address, STATUS_LABELS[r.status], " ".join(r.venue_ids), r.last_scan_date or ""]


def compliance_csv(rows: Sequence[EstablishmentStatus], ward_names: dict[str, str]) -> bytes:
    return csv_bytes(HEADER, (_cells(r, ward_names) for r in rows))


def compliance_xlsx(rows: Sequence[EstablishmentStatus], ward_names: dict[str, str], day: date) -> bytes:
    return xlsx_bytes(HEADER, (_cells(r, ward_names) for r in rows), sheet=f"Tuân thủ {day.isoformat()}")


def compliance_pdf(rows: Sequence[EstablishmentStatus], ward_names: dict[str, str], day: date,
                   category: str | None) -> bytes:
    """A4 landscape table per ward: what the ward chairman takes door to door, with a box to tick.

    Rows are drawn cell by cell with the text wrapped per word (fpdf2's ``table()`` measured every
    character twice: 13 s for a city's 2,500 establishments, under 1 s this way)."""
    pdf = new_pdf(landscape=True)
    pdf.set_title("Danh sách cơ sở phải quét mã QR")
    wards = sorted({r.ward_code for r in rows}) or [""]
    for ward in wards:
        items = [r for r in rows if r.ward_code == ward]
        pdf.add_page()
        pdf.set_font("dejavu", "B", 14)
        title = f"Danh sách cơ sở phải quét mã QR — {ward_names.get(ward, ward)}"
        pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("dejavu", "", 10)
        counts = {s: sum(r.status == s for r in items) for s in STATUS_LABELS}
        sub = f"Ngày {day.strftime('%d/%m/%Y')}" + (f" · {CATEGORY_LABELS.get(category, category)}" if category else "")
        sub += " · " + ", ".join(f"{STATUS_LABELS[s]}: {n}" for s, n in counts.items())
        pdf.cell(0, 6, sub, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        _table_row(pdf, PDF_HEADS, bold=True)
        for i, r in enumerate(items, start=1):
            cells = (str(i), r.name, r.address, CATEGORY_LABELS.get(r.category, r.category),
                     STATUS_LABELS[r.status], r.last_scan_date or "—", "")
            if not _table_row(pdf, cells, fits_only=True):  # a long ward runs over pages, headings repeated
                pdf.add_page()
                _table_row(pdf, PDF_HEADS, bold=True)
                _table_row(pdf, cells)
    return bytes(pdf.output())


PDF_WIDTHS = (10, 72, 80, 38, 40, 22, 12)
PDF_HEADS = ("STT", "Tên cơ sở", "Địa chỉ", "Loại hình", "Trạng thái", "Quét gần nhất", "Đã đến")
LINE, PAD, BOTTOM = 5.0, 1.0, 12.0  # mm: line height, cell padding, bottom margin


def _wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` (mm), broken between words; a word wider than a line is
    broken between characters."""
    if pdf.get_string_width(text) <= width:  # most cells: one measure
        return [text]
    space = pdf.get_string_width(" ")
    lines: list[str] = []
    line, used = "", 0.0
    for word in text.split():
        w = pdf.get_string_width(word)
        while w > width:  # a word longer than the column: cut it
            cut = len(word)
            while cut > 1 and pdf.get_string_width(word[:cut]) > width:
                cut -= 1
            if line:
                lines.append(line)
                line, used = "", 0.0
            lines.append(word[:cut])
            word = word[cut:]
            w = pdf.get_string_width(word)
        if line and used + space + w > width:
            lines.append(line)
            line, used = "", 0.0
        line, used = (f"{line} {word}", used + space + w) if line else (word, w)
    if line or not lines:
        lines.append(line)
    return lines


def _table_row(pdf: FPDF, cells: Sequence[str], *, bold: bool = False, fits_only: bool = False) -> bool:
    """Draw one bordered row at the cursor; with ``fits_only``, draw nothing and answer False when the row
    would cross the bottom margin."""
    pdf.set_font("dejavu", "B" if bold else "", 8.5)
    wrapped = [_wrap(pdf, text, width - 2 * PAD) for text, width in zip(cells, PDF_WIDTHS, strict=True)]
    height = max(len(lines) for lines in wrapped) * LINE + PAD
    if fits_only and pdf.get_y() + height > pdf.h - BOTTOM:
        return False
    x, y = pdf.l_margin, pdf.get_y()
    for lines, width in zip(wrapped, PDF_WIDTHS, strict=True):
        pdf.rect(x, y, width, height)
        for n, line in enumerate(lines):
            pdf.text(x + PAD, y + PAD / 2 + (n + 0.75) * LINE, line)
        x += width
    pdf.set_xy(pdf.l_margin, y + height)
    return True
