"""Bulk poster PDFs (issue 15) without the stack: long Vietnamese names and addresses, validity windows,
every page rendered at 150 dpi by pdftoppm and its QR read by zbarimg; DejaVu embedded."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from truyvet.posters import PosterVenue, posters_pdf

LONG = "Nhà hàng Tiệc cưới Hoàng Gia Bắc Kạn — Sảnh Tường Vi, Phượng Hoàng và Ngọc Lan (tầng 1 đến tầng 4)"


def test_every_page_scans_at_150_dpi_and_fonts_are_embedded(tmp_path: Path) -> None:
    t = datetime(2026, 12, 5, 3, tzinfo=UTC)
    venues = [PosterVenue(f"v{i:016x}", LONG if i % 2 else f"Quán Phở Đức Xuân {i}",
                          "wedding" if i % 2 else "food_drink",
                          LONG if i == 1 else "Tổ 15, Phường Đức Xuân, Thành phố Bắc Kạn", "Phường Đức Xuân",
                          t if i == 1 else None, t + timedelta(hours=6) if i == 1 else None,
                          f"TV1.k0a1b2c3d.{'e' * (40 + 30 * i)}.{'s' * 86}")
              for i in range(3)]
    pdf = tmp_path / "posters.pdf"
    pdf.write_bytes(posters_pdf(venues, created_at=t))
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 3
    codes = [subprocess.run(["zbarimg", "--quiet", "--raw", str(p)], capture_output=True, text=True,
                            check=True).stdout.strip() for p in pages]
    assert codes == [v.qr_payload for v in venues]
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    assert fonts and all("DejaVuSans" in line and " yes yes yes " in line for line in fonts)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Hiệu lực: từ 05/12/2026 10:00 đến 05/12/2026 16:00" in text and "Đám cưới" in text
    assert "Hiệu lực: không thời hạn" in text
