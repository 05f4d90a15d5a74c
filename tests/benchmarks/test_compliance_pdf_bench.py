"""Benchmark: the printable compliance list (``GET /v1/reports/compliance?format=pdf``) for a city.

The list is what a ward chairman takes door to door; a city office prints every ward's at once. Under
load the first version (fpdf2's ``table()``, which measures every character of every cell twice) took
13 s for 2,500 establishments and made the API's own tests time out. This compares it with the cell by
cell drawing of ``trace_api/compliance_export.py`` on the same rows: Vietnamese names and addresses,
one in seven long enough to wrap, 20 wards. Writes the ``compliance-pdf`` section of BENCHMARKS.md.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_compliance_pdf_bench.py -m benchmark -s``
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import date

import pytest
from rich.progress import Progress

from tests.benchmarks.report import write_section
from trace_api.compliance import EstablishmentStatus
from trace_api.compliance_export import PDF_HEADS, PDF_WIDTHS, STATUS_LABELS, compliance_pdf
from truyvet.posters import CATEGORY_LABELS, new_pdf

pytestmark = pytest.mark.benchmark

SIZES = (500, 2_500, 10_000)
STREETS = ("Nguyễn Thị Minh Khai", "Trần Hưng Đạo", "Lê Lợi", "Hai Bà Trưng", "Điện Biên Phủ")
KINDS = ("Quán phở", "Cà phê", "Tạp hoá", "Nhà thuốc", "Karaoke", "Tiệm vàng", "Phòng khám")


def _city(n: int) -> list[EstablishmentStatus]:
    rnd = random.Random(n)
    categories = list(CATEGORY_LABELS)
    rows = []
    for i in range(n):
        name = f"{rnd.choice(KINDS)} {rnd.choice(STREETS)} số {i}"
        if i % 7 == 0:
            name += " chi nhánh hai, gần chợ đầu mối nông sản"
        status = rnd.choice(("not_registered", "silent", "scanning"))
        rows.append(EstablishmentStatus(
            roster_id=f"r{i}", ward_code=f"W{i % 20:02d}", category=rnd.choice(categories), name=name,
            address=f"{rnd.randint(1, 400)} {rnd.choice(STREETS)}, tổ {rnd.randint(1, 30)}, khu phố {i % 9}",
            status=status, venue_ids=(), last_scan_date="2026-12-01" if status == "scanning" else None))
    return rows


def _table_pdf(rows: Sequence[EstablishmentStatus], wards: dict[str, str], day: date,
               category: str | None) -> bytes:
    """The former way, kept here as the reference: fpdf2's ``table()``."""
    pdf = new_pdf(landscape=True)
    pdf.set_auto_page_break(auto=True, margin=12)
    for ward in sorted({r.ward_code for r in rows}):
        pdf.add_page()
        pdf.set_font("dejavu", "", 8.5)
        with pdf.table(col_widths=PDF_WIDTHS, width=sum(PDF_WIDTHS), line_height=5, align="L",
                       text_align="LEFT") as table:
            table.row(PDF_HEADS)
            for i, r in enumerate((r for r in rows if r.ward_code == ward), start=1):
                table.row((str(i), r.name, r.address, CATEGORY_LABELS.get(r.category, r.category),
                           STATUS_LABELS[r.status], r.last_scan_date or "—", ""))
    return bytes(pdf.output())


def test_compliance_pdf() -> None:
    ways: dict[str, Callable[..., bytes]] = {"cell by cell (now)": compliance_pdf, "fpdf2 table() (before)": _table_pdf}
    wards = {f"W{i:02d}": f"Phường {i}" for i in range(20)}
    results: dict[tuple[str, int], tuple[float, int]] = {}
    with Progress() as progress:
        task = progress.add_task("compliance PDFs", total=len(ways) * len(SIZES))
        for n in SIZES:
            rows = _city(n)
            for way, render in ways.items():
                began = time.perf_counter()
                pdf = render(rows, wards, date(2026, 12, 2), None)
                results[(way, n)] = (time.perf_counter() - began, len(pdf))
                assert pdf.startswith(b"%PDF")
                progress.advance(task)
    lines = ["| establishments | " + " | ".join(f"{w} s" for w in ways) + " | speed-up | PDF size (now) |",
             "|---:|" + "---:|" * (len(ways) + 2)]
    for n in SIZES:
        now, before = results[(next(iter(ways)), n)][0], results[(list(ways)[1], n)][0]
        lines.append(f"| {n:,} | {now:.2f} | {before:.2f} | {before / now:.1f}× | "
                     f"{results[(next(iter(ways)), n)][1] / 2**20:.1f} MiB |")
    body = ("The compliance list as PDF for a city of 20 wards (A4 landscape, a table per ward, headings "
            "repeated on every page, DejaVu embedded), one process, nothing else running.\n\n"
            + "\n".join(lines) + "\n")
    print("\n" + body)
    write_section("compliance-pdf", "Compliance list as PDF: cell by cell vs fpdf2 table()", body,
                  command="pytest tests/benchmarks/test_compliance_pdf_bench.py -m benchmark -s")
