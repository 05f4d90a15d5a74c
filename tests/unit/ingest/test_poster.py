"""Poster text: every Vietnamese letter has a real glyph in the font (no tofu boxes), and the page is
big enough to print at 15 cm or more."""

from __future__ import annotations

import io
import subprocess
import unicodedata
from pathlib import Path

from PIL import Image

from ingest.poster import CATEGORY_LABELS, DPI, INSTRUCTIONS, _font, poster_png

NAMES = ["Chợ Đức Xuân", "Phường Nguyễn Thị Minh Khai", "Xã Nông Thượng", "Huyền Tụng", "Xuất Hóa",
         "Quán phở Sông Cầu", "Nhà văn hóa tổ 5 Phùng Chí Kiên", "Dương Quang"]
VIETNAMESE = "ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ"


def _ink(text: str) -> bytes:
    font = _font(True, 60)
    image = Image.new("L", (120, 120), 0)
    from PIL import ImageDraw

    ImageDraw.Draw(image).text((20, 10), text, font=font, fill=255)
    return image.tobytes()


def test_every_letter_on_the_poster_has_a_glyph() -> None:
    missing = _ink("\ue000")  # a private-use code point: the font's "missing glyph" box
    letters = set(VIETNAMESE + VIETNAMESE.upper() + "".join(NAMES) + "".join(CATEGORY_LABELS.values())
                  + "".join(INSTRUCTIONS))
    tofu = sorted(ch for ch in letters if not ch.isspace() and _ink(ch) == missing)
    assert tofu == []


def test_poster_is_at_least_15_cm_and_decodes(tmp_path: Path) -> None:
    payload = "TV1.kabc.eyJ2IjoidjEifQ.c2ln"
    png = poster_png(payload, name=unicodedata.normalize("NFD", NAMES[0]) + " — quầy số 12, dãy B, tầng 1",
                     category="market_shop", ward="Phường Đức Xuân")
    with Image.open(io.BytesIO(png)) as image:
        assert round(image.info["dpi"][0]) == DPI
        assert min(image.size) / DPI * 2.54 >= 15
    (tmp_path / "p.png").write_bytes(png)
    out = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "p.png")], capture_output=True, text=True,
                         check=False)
    assert out.stdout.strip() == payload
