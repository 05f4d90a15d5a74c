"""The ward chairman's compliance list as CSV (UTF-8 with BOM), XLSX and a printable PDF, in Vietnamese.

Cells that a spreadsheet would read as a formula are neutralised (trace_api/export.py) in CSV and XLSX.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import Font

from trace_api.compliance import EstablishmentStatus
from trace_api.export import neutralise, to_csv
from truyvet.posters import CATEGORY_LABELS, new_pdf

STATUS_LABELS = {"not_registered": "Chưa đăng ký", "silent": "Đã đăng ký, không quét", "scanning": "Đang quét"}
HEADER = ["Mã cơ sở", "Mã phường/xã", "Phường/xã", "Loại hình", "Tên cơ sở", "Địa chỉ", "Trạng thái",
          "Mã địa điểm", "Ngày quét gần nhất"]


def _cells(r: EstablishmentStatus, ward_names: dict[str, str]) -> list[object]:
    return [r.roster_id, r.ward_code, ward_names.get(r.ward_code, ""), CATEGORY_LABELS.get(r.category, r.category),
            r.name, r.address, STATUS_LABELS[r.status], " ".join(r.venue_ids), r.last_scan_date or ""]


def compliance_csv(rows: Sequence[EstablishmentStatus], ward_names: dict[str, str]) -> bytes:
    return ("\ufeff" + to_csv(HEADER, (_cells(r, ward_names) for r in rows))).encode("utf-8")


def compliance_xlsx(rows: Sequence[EstablishmentStatus], ward_names: dict[str, str], day: date) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = f"Tuân thủ {day.isoformat()}"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r in rows:
        sheet.append([neutralise(v) for v in _cells(r, ward_names)])
    for column, width in zip("ABCDEFGHI", (18, 10, 22, 24, 40, 40, 22, 20, 14), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def compliance_pdf(rows: Sequence[EstablishmentStatus], ward_names: dict[str, str], day: date,
                   category: str | None) -> bytes:
    """A4 landscape table per ward: what the ward chairman takes door to door, with a box to tick."""
    pdf = new_pdf(landscape=True)
    pdf.set_auto_page_break(auto=True, margin=12)  # a long ward runs over pages, headings repeated
    pdf.set_title("Danh sách cơ sở phải quét mã QR")
    widths = (10, 72, 80, 38, 40, 22, 12)
    heads = ("STT", "Tên cơ sở", "Địa chỉ", "Loại hình", "Trạng thái", "Quét gần nhất", "Đã đến")
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
        pdf.set_font("dejavu", "", 8.5)
        with pdf.table(col_widths=widths, width=sum(widths), line_height=5, align="L", text_align="LEFT") as table:
            table.row(heads)
            for i, r in enumerate(items, start=1):
                table.row((str(i), r.name, r.address, CATEGORY_LABELS.get(r.category, r.category),
                           STATUS_LABELS[r.status], r.last_scan_date or "—", ""))
    return bytes(pdf.output())
