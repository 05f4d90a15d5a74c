"""Venue QR images: ``qr.png``, ``qr.svg`` and a printable poster (15 x 21 cm at 300 dpi).

The poster text uses DejaVu Sans (Debian ``fonts-dejavu-core``), which has every Vietnamese
precomposed letter, so "Phường Đức Xuân" prints with its diacritics.
"""

from __future__ import annotations

import io
import textwrap
import unicodedata
from pathlib import Path

import qrcode
import qrcode.image.svg
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from truyvet.posters import CATEGORY_LABELS

DPI = 300
POSTER_CM = (15.0, 21.0)  # docs/domain.md: posters at least 15 x 15 cm
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))

INSTRUCTIONS = (
    "Quét mã QR khi vào và khi ra.",
    "Hoặc xuất trình mã QR cá nhân / thẻ CCCD để nhân viên quét.",
)


def _qr(payload: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(payload.encode("utf-8"))
    code.make(fit=True)
    return code


def qr_png(payload: str, *, box_size: int = 10) -> bytes:
    code = _qr(payload)
    code.box_size = box_size
    image = code.make_image(fill_color="black", back_color="white").get_image()
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def qr_svg(payload: str) -> bytes:
    image = _qr(payload).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return bytes(image.to_string(encoding="utf-8"))


def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for directory in FONT_DIRS:
        if (directory / name).exists():
            return ImageFont.truetype(str(directory / name), size)
    raise FileNotFoundError(f"{name} not found; install Debian fonts-dejavu-core")


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, font: ImageFont.FreeTypeFont, width: int,
              max_chars: int) -> int:
    for line in textwrap.wrap(text, max_chars) or [""]:
        left, top, right, bottom = draw.textbbox((0, 0), line, font=font)
        draw.text(((width - (right - left)) // 2, y), line, font=font, fill="black")
        y += int(bottom - top) + int(font.size) // 3
    return y


def poster_png(payload: str, *, name: str, category: str, ward: str) -> bytes:
    """A printable poster: venue name, category and ward above the code, short instructions below."""
    width, height = (round(cm / 2.54 * DPI) for cm in POSTER_CM)
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    margin = round(width * 0.06)
    y: int = margin
    y = _centered(draw, y, "MÃ QR ĐIỂM KIỂM DỊCH", _font(True, 70), width, 30) + 10
    y = _centered(draw, y, unicodedata.normalize("NFC", name), _font(True, 90), width, 24) + 10
    y = _centered(draw, y, CATEGORY_LABELS.get(category, category), _font(False, 56), width, 40)
    y = _centered(draw, y, unicodedata.normalize("NFC", ward), _font(False, 56), width, 40) + 20
    code = _qr(payload)
    modules = code.modules_count + 2 * code.border
    room = min(width - 2 * margin, height - y - 330)
    code.box_size = max(4, room // modules)
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    page.paste(image, ((width - image.width) // 2, y))
    y += image.height + 20
    for line in INSTRUCTIONS:
        y = _centered(draw, y, line, _font(False, 44), width, 52)
    draw.rectangle((8, 8, width - 9, height - 9), outline="black", width=6)
    out = io.BytesIO()
    page.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()
