"""CCCD card QR text → keyed pseudonym. The raw ID number never leaves this module.

CCCD QR text (docs/domain.md): seven ``|``-separated fields: 12-digit ID number, old 9-digit ID (may be
empty), full name, date of birth ``ddmmyyyy``, sex, permanent address, issue date ``ddmmyyyy``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

_ID = re.compile(r"^[0-9]{12}$")
_OLD_ID = re.compile(r"^([0-9]{9})?$")
_DATE = re.compile(r"^[0-9]{8}$")


class CccdError(ValueError):
    """The CCCD text is malformed; the message never contains the text itself."""


@dataclass(frozen=True)
class CccdCard:
    """Parsed card. ``repr`` hides the ID number so it cannot reach a log by accident."""

    id_number: str
    full_name: str
    birth_date: date
    sex: str
    address: str
    issue_date: date

    def __repr__(self) -> str:
        return "CccdCard(<redacted>)"


def _ddmmyyyy(text: str, field: str) -> date:
    if not _DATE.match(text):
        raise CccdError(f"cccd_qr: {field} is not a ddmmyyyy date")
    try:
        return datetime.strptime(text, "%d%m%Y").date()
    except ValueError:
        raise CccdError(f"cccd_qr: {field} is not a ddmmyyyy date") from None


def parse_cccd(text: str) -> CccdCard:
    """The card in ``text``, NFKC-normalised first: full-width digits and bars read as ASCII ones (one
    card, one pseudonym); digits of other scripts are refused."""
    parts = unicodedata.normalize("NFKC", text).strip().split("|")
    if len(parts) != 7:
        raise CccdError(f"cccd_qr: expected 7 fields separated by '|', got {len(parts)}")
    id_number, old_id, name, dob, sex, address, issued = (p.strip() for p in parts)
    if not _ID.match(id_number):
        raise CccdError("cccd_qr: ID number must be 12 digits")
    if not _OLD_ID.match(old_id):
        raise CccdError("cccd_qr: old ID must be empty or 9 digits")
    if not name:
        raise CccdError("cccd_qr: name is empty")
    return CccdCard(id_number, name, _ddmmyyyy(dob, "date of birth"), sex, address,
                    _ddmmyyyy(issued, "issue date"))


def pseudonym(key: bytes, id_number: str) -> str:
    """Keyed pseudonym of a national ID number: ``c_`` + 26 base32 chars of HMAC-SHA256."""
    digest = hmac.new(key, b"cccd:" + id_number.encode(), hashlib.sha256).digest()
    return "c_" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]
