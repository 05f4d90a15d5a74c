"""The ward chairman's compliance list as CSV (UTF-8 with BOM), XLSX and a printable PDF, in Vietnamese.

Cells that a spreadsheet would read as a formula are neutralised (trace_api/export.py) in CSV and XLSX.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

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
