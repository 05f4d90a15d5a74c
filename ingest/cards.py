"""Printed personal cards (docs/api.md, "Personal cards"): issue one, draw it, keep its details restricted.

A card is for a person without a smartphone or chip ID card. Its QR code carries only a new random
pseudonymous person id, signed (truyvet/cards.py); the name and ward go to the restricted
``person_details`` store (what health roles of that ward read through the trace API), the phone and the
issued payload to ``person_cards``, both in ``<db>_personal``; the ward also to ``person_wards``.
Issuing and printing are for the health center of the person's ward, registrars and admins; a health
center of another ward gets 403. Every print of a card (it shows the name) is written to the audit log.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from ingest.persons import save_details
from ingest.poster import DPI
from truyvet.auth import Principal, Role
from truyvet.posters import font_path
from truyvet.schema.databases import audit_database, personal
from truyvet.schema.db import Database
from truyvet.web import ApiError

CARD_CM = (10.0, 6.5)  # personal printed codes at least 5 x 5 cm (docs/domain.md): the code is 5.5 cm
AUDIT_COLUMNS = ["at", "actor", "role", "ward_code", "action", "case_id", "params", "result_count", "reason"]


@dataclass(frozen=True)
class CardRecord:
    person_id: str
    residence_ward_code: str
    full_name: str
    card_payload: str


def new_person_id() -> str:
    return "c" + secrets.token_hex(10)


def may_handle(principal: Principal, ward_code: str) -> None:
    """A health center only for residents of its own ward (registrars and admins for any)."""
    if principal.role == Role.health_center and principal.ward_code != ward_code:
        raise ApiError(403, "forbidden", "a health center issues and prints cards of its own ward only")


def store_card(db: Database, *, person_id: str, ward_code: str, full_name: str, phone: str, payload: str,
               key_id: str, issued_by: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    save_details(db, [(person_id, full_name, "", "", "", ward_code, "card", now)])
    db.insert(personal(db.name, "person_cards"),
              ["person_id", "residence_ward_code", "phone", "card_payload", "key_id", "issued_by", "issued_at"],
              [(person_id, ward_code, phone, payload, key_id, issued_by, now)])


def load_card(db: Database, person_id: str) -> CardRecord | None:
    rows = db.execute("SELECT person_id, residence_ward_code, card_payload "
                      f"FROM {personal(db.name, 'person_cards')} FINAL WHERE person_id = %(p)s", {"p": person_id})
    if not rows:
        return None
    names = db.execute(f"SELECT full_name FROM {personal(db.name, 'person_details')} FINAL WHERE person_id = %(p)s",
                       {"p": person_id})
    return CardRecord(str(rows[0][0]), str(rows[0][1]), str(names[0][0]) if names else "", str(rows[0][2]))


def audit_print(db: Database, principal: Principal, person_id: str) -> None:
    """The audit log's entry for a card print (the trace API's vocabulary: ``person.read``)."""
    # the log's own database (migration 0070; trace_api/audit.py writes the same table)
    db.insert(f"{audit_database(db.name)}.audit_log", AUDIT_COLUMNS, [(
        datetime.now(UTC).replace(microsecond=0), principal.actor, principal.role.value, principal.ward_code,
        "person.read", "", orjson.dumps({"persons": [person_id], "what": "card.png"}).decode(), 1,
        "printing a personal card")])


def card_png(payload: str, *, full_name: str, ward_name: str) -> bytes:
    """A printable card (10 x 6.5 cm at 300 dpi): the QR code on the left, name, ward and use on the right."""
    width, height = (round(cm / 2.54 * DPI) for cm in CARD_CM)
    card = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(card)
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(payload.encode("utf-8"))
    code.make(fit=True)
    modules = code.modules_count + 2 * code.border
    side = round(5.5 / 2.54 * DPI)
    code.box_size = max(4, side // modules)
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    card.paste(image, (20, (height - image.height) // 2))
    x = image.width + 40
    y = 50
    for text, bold, size in (("THẺ QR CÁ NHÂN", True, 40), (full_name or "—", True, 36), (ward_name, False, 28),
                             ("Xuất trình thẻ khi vào và ra", False, 24), ("địa điểm để được quét mã.", False, 24),
                             ("Không cho người khác mượn thẻ.", False, 24)):
        font = ImageFont.truetype(str(font_path(bold)), size)
        for line in _wrap(draw, text, font, width - x - 20):
            draw.text((x, y), line, font=font, fill="black")
            y += size + 14
        y += 8
    draw.rectangle((4, 4, width - 5, height - 5), outline="black", width=4)
    out = io.BytesIO()
    card.save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: object, room: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= room:  # type: ignore[arg-type]
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]
