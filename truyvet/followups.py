"""Follow-up records of ward health stations: the statuses and the row, shared by the alert dispatcher
(which writes each contact's record as ``new`` when it first reads the alert) and the trace API (which
lists and changes them). docs/api.md, "Follow-up and people".

One record per (case, contact) in the ward its alert went to (the ward rule,
:func:`truyvet.alerts.addressee_ward`). The ``new`` record has version 0, so writing it again (an alert
read twice after a dispatcher restart) never undoes a change, whose version is the time in ns.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum

from truyvet.events import Alert


class FollowUpStatus(StrEnum):
    new = "new"
    called = "called"
    unreachable = "unreachable"
    quarantined = "quarantined"
    tested_negative = "tested_negative"
    tested_positive = "tested_positive"
    released = "released"


COLUMNS = ["ward_code", "case_id", "person_id", "generation", "status", "note", "created_at", "updated_at",
           "updated_by", "new_case_id", "version"]
SYSTEM = "system"  # updated_by of a record nobody has changed yet


def is_contact_alert(alert: Alert) -> bool:
    """Alerts about a case's contact (not other kinds, e.g. a health declaration) have a follow-up record."""
    return str(getattr(alert, "kind", "contact") or "contact") == "contact"


def new_row(alert: Alert) -> tuple[object, ...]:
    """The ``new`` record of the contact an alert names (version 0: any change wins over it)."""
    return (alert.ward_code, alert.case_id, alert.person_id, alert.generation, FollowUpStatus.new.value, "",
            alert.created_at, alert.created_at, SYSTEM, "", 0)


def changed_row(current: dict[str, object], *, status: str, note: str, by: str,
                new_case_id: str | None = None) -> tuple[object, ...]:
    """``current`` (a record as read, with :data:`COLUMNS` keys) changed by ``by`` now."""
    now = datetime.now(UTC).replace(microsecond=0)
    return (current["ward_code"], current["case_id"], current["person_id"], current["generation"], status, note,
            current["created_at"], now, by, current["new_case_id"] if new_case_id is None else new_case_id,
            time.time_ns())
