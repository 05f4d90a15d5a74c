"""Printable PDFs: venue posters in bulk (one A4 page per venue) and the fonts every printout uses.

Used by ``truyvet posters``, ingest's ``GET /v1/venues/posters.pdf`` and the dashboard's download. Text
is set in DejaVu Sans (Debian ``fonts-dejavu-core``), embedded in the PDF (fpdf2 subsets it), which has
every Vietnamese letter. Each page's QR code is 11 cm wide (posters at least 15 x 15 cm, the code well
over the 5 cm a phone needs) and survives rendering at 150 dpi (tests decode every page with zbarimg).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import qrcode
from fpdf import FPDF
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M

from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
VIETNAM = timezone(timedelta(hours=7))

CATEGORY_LABELS = {
    "office": "Văn phòng", "factory": "Nhà máy, cơ sở sản xuất", "food_drink": "Ăn uống tại chỗ",
    "bar": "Quán bar", "karaoke": "Karaoke", "massage_beauty": "Massage, làm đẹp", "gym": "Phòng tập thể dục",
    "meeting": "Hội nghị, hội họp, đào tạo", "health_facility": "Cơ sở y tế", "school": "Trường học",
    "bus_station": "Bến xe", "public_transport": "Phương tiện công cộng",
    "mall_supermarket": "Trung tâm thương mại, siêu thị", "market_shop": "Chợ, cửa hàng thiết yếu",
    "wedding": "Đám cưới", "funeral": "Đám tang", "tourist_site": "Điểm du lịch",
    "entertainment": "Vui chơi, giải trí", "spiritual_site": "Cơ sở tôn giáo, tín ngưỡng",
}
INSTRUCTIONS = (
    "1. Mở ứng dụng, quét mã QR này khi vào và khi ra.",
    "2. Không có điện thoại thông minh: xuất trình thẻ QR cá nhân hoặc thẻ CCCD gắn chip để nhân viên quét.",
    "3. Khai báo y tế nếu có triệu chứng sốt, ho, khó thở hoặc đã tiếp xúc với ca bệnh.",
)


def font_path(bold: bool = False) -> Path:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for directory in FONT_DIRS:
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{name} not found; install Debian fonts-dejavu-core")


def new_pdf(*, landscape: bool = False) -> FPDF:
    """An A4 document with DejaVu Sans (regular ``""`` and bold ``"B"``) as font ``dejavu``."""
    pdf = FPDF(orientation="L" if landscape else "P", unit="mm", format="A4")
    pdf.add_font("dejavu", "", str(font_path()))
    pdf.add_font("dejavu", "B", str(font_path(bold=True)))
    pdf.set_auto_page_break(auto=False)
    pdf.set_creator("Truy Vết")
    return pdf


@dataclass(frozen=True)
class PosterVenue:
    venue_id: str
    name: str
    category: str
    address: str
    ward_name: str
    valid_from: datetime | None
    valid_until: datetime | None
    qr_payload: str


def local(value: datetime) -> str:
    return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def validity(venue: PosterVenue) -> str:
    if venue.valid_from and venue.valid_until:
        return f"Hiệu lực: từ {local(venue.valid_from)} đến {local(venue.valid_until)}"
    if venue.valid_from:
        return f"Hiệu lực: từ {local(venue.valid_from)}"
    if venue.valid_until:
        return f"Hiệu lực: đến {local(venue.valid_until)}"
    return "Hiệu lực: không thời hạn"


def _qr_image(payload: str) -> Image.Image:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=12, border=4)
    code.add_data(payload.encode("utf-8"))
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("L")


def posters_pdf(venues: Iterable[PosterVenue], *, created_at: datetime) -> bytes:
    """One A4 page per venue: title, name, category, address and ward, validity, QR code, instructions."""
    pdf = new_pdf()
    pdf.set_title("Mã QR điểm kiểm dịch")
    width = 210.0
    for venue in venues:
        pdf.add_page()
        pdf.set_line_width(1.2)
        pdf.rect(8, 8, width - 16, 297 - 16)
        pdf.set_xy(15, 16)
        pdf.set_font("dejavu", "B", 20)
        pdf.cell(width - 30, 10, "MÃ QR ĐIỂM KIỂM DỊCH COVID-19", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_x(15)
        pdf.set_font("dejavu", "B", 24)
        pdf.multi_cell(width - 30, 11, unicodedata.normalize("NFC", venue.name), align="C",
                       new_x="LMARGIN", new_y="NEXT", max_line_height=11)
        pdf.set_font("dejavu", "", 13)
        for line in (f"Loại hình: {CATEGORY_LABELS.get(venue.category, venue.category)}",
                     f"Địa chỉ: {unicodedata.normalize('NFC', venue.address or '—')}",
                     f"Phường/xã: {unicodedata.normalize('NFC', venue.ward_name)}",
                     validity(venue)):
            pdf.set_x(15)
            pdf.multi_cell(width - 30, 6.5, line, align="C", new_x="LMARGIN", new_y="NEXT")
        top = max(pdf.get_y() + 5, 88.0)
        side = max(60.0, min(110.0, 230.0 - top))  # a very long name or address shrinks the code, never off the page
        pdf.image(_qr_image(venue.qr_payload), x=(width - side) / 2, y=top, w=side, h=side)
        pdf.set_xy(15, top + side + 6)
        pdf.set_font("dejavu", "B", 13)
        pdf.cell(width - 30, 7, "Hướng dẫn", align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("dejavu", "", 11.5)
        for line in INSTRUCTIONS:
            pdf.set_x(22)
            pdf.multi_cell(width - 44, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_xy(15, 275)
        pdf.set_font("dejavu", "", 8)
        pdf.cell(width - 30, 4, f"Mã địa điểm {venue.venue_id} · in ngày {local(created_at)}", align="C")
    return bytes(pdf.output())


def poster_venues(db: Database, ward_code: str, category: str | None = None, *,
                  sign: Callable[[str, datetime | None, datetime | None], str] | None = None) -> list[PosterVenue]:
    """The registered venues of a ward (one category or all), by name, with their QR text.

    :param sign: issues a code for a venue registered before signed codes had one (ingest's key ring);
        without it such a venue is left out.
    """
    params: dict[str, object] = {"ward": ward_code}
    where = "ward_code = %(ward)s"
    if category:
        where += " AND category = %(category)s"
        params["category"] = category
    rows = db.execute("SELECT venue_id, name, category, address, valid_from, valid_until FROM "
                      "(SELECT venue_id, name, category, address, valid_from, valid_until, ward_code "
                      f"FROM venues FINAL) WHERE {where} ORDER BY name, venue_id", params)
    if not rows:
        return []
    ids = tuple(str(r[0]) for r in rows)
    payloads = {str(v): str(p) for v, p in db.execute(
        "SELECT venue_id, qr_payload FROM venue_qr_codes FINAL WHERE venue_id IN %(ids)s", {"ids": ids})}
    names = db.execute("SELECT name FROM units FINAL WHERE code = %(c)s", {"c": ward_code})
    ward_name = str(names[0][0]) if names else ward_code
    out = []
    for venue_id, name, cat, address, valid_from, valid_until in rows:
        start = None if valid_from.timestamp() <= 0 else valid_from.astimezone(UTC)
        until = None if valid_until.timestamp() <= 0 else valid_until.astimezone(UTC)
        payload = payloads.get(str(venue_id))
        if payload is None and sign is not None:
            payload = sign(str(venue_id), start, until)
        if payload is None:
            logger.warning("venue %s has no signed code yet; left out of the posters", venue_id)
            continue
        out.append(PosterVenue(str(venue_id), str(name), str(cat), str(address), ward_name, start, until, payload))
    return out
