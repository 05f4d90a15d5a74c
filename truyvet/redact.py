"""Identity scrubbing by the shape of values, never by key names (issue 13, item 8).

A client may put a chip card's QR text or an ID card number anywhere: under an odd key, in a key, in a
scan id, in a query string. What leaves the ingest edge as text that is kept (dead letters, rejection
reasons, every log record) goes through :func:`scrub` first, which removes

- chip-card QR text: a run of ``|``-separated fields (the card has seven; four or more fields are
  removed), with the number, name, birth date and address it holds;
- ID card numbers: 9 or 12 digits standing alone (old CMND / CCCD), in any digit form Unicode folds to
  ASCII (full-width ``０１２…``).

Text is NFKC-normalised first, so full-width digits and bars are caught like ASCII ones.
:func:`install_log_scrubber` makes every log record of the process go through it (message, arguments and
traceback), whatever logger or handler writes it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import orjson

ID_NUMBER_REMOVED = "[id number removed]"
CARD_REMOVED = "[card text removed]"

# A run of at least four |-separated fields inside one string (not crossing quotes, brackets or lines); the
# first field (the ID number) has no spaces, the others (name, address) may.
_CARD = re.compile(r"[^\s\"'|{}\[\]]*(?:\|[^\"'\n\r|{}\[\]]*){3,}")
_ID_NUMBER = re.compile(r"(?<![\w-])\d{9}(?:\d{3})?(?![\w-])")


def scrub(text: str) -> str:
    """``text`` without chip-card QR text or ID card numbers (NFKC-normalised where anything differs)."""
    if not text:
        return text
    folded = unicodedata.normalize("NFKC", text)
    if "|" not in folded and not any(c.isdigit() for c in folded):
        return text
    clean = _ID_NUMBER.sub(ID_NUMBER_REMOVED, _CARD.sub(CARD_REMOVED, folded))
    return text if clean == folded else clean


def scrub_document(text: str) -> str:
    """:func:`scrub` for text that may be JSON: a JSON document has every key and string scrubbed after
    decoding (``\\u0030…`` escapes cannot hide digits) and is written back without escapes; other text
    is scrubbed as text."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return scrub(text)
    return orjson.dumps(_walk(doc)).decode()


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): _walk(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return value if scrub(str(value)) == str(value) else ID_NUMBER_REMOVED
    return value


def has_identity(text: str) -> bool:
    return scrub(text) != text


def _scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed call still logs, scrubbed, as its raw parts
        message = f"{record.msg} {record.args}"
    clean = scrub(message)
    if clean != message or record.args:
        record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    return record


def install_log_scrubber() -> None:
    """Every log record made in this process is scrubbed when it is made (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "truyvet_scrubs", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _scrub_record(previous(*args, **kwargs))

    factory.truyvet_scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
