"""Phones citizens gave with consent (``PUT /v1/me/contact``), in the restricted ``person_contacts`` store
(``<db>_personal``).

Who may read a phone (docs/api.md, "Follow-up and people"): only the health center that may read that
person: of the person's residence ward where known (``person_wards``), else of the ward of the
exposure venue, which is the ward the person's alert and follow-up record went to (the ward rule,
:func:`truyvet.alerts.addressee_ward`). Epidemiologists and admins do not get phones: they do not call
contacts, the ward health station does. Every read is audited (``person.phone_read``, the persons).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from trace_api import audit
from truyvet.alerts import residence_wards
from truyvet.auth import Principal, Role
from truyvet.schema.databases import personal
from truyvet.schema.db import Database

COLUMNS = ["person_id", "phone", "consent", "updated_at", "deleted", "version"]


def set_phone(db: Database, person_id: str, phone: str) -> None:
    db.insert(personal(db.name, "person_contacts"), COLUMNS,
              [(person_id, phone, 1, datetime.now(UTC).replace(microsecond=0), 0, time.time_ns())])


def delete_phone(db: Database, person_id: str) -> None:
    """The phone is gone for every reader at once (a newer row without it); the sweep removes the rows."""
    db.insert(personal(db.name, "person_contacts"), COLUMNS,
              [(person_id, "", 0, datetime.now(UTC).replace(microsecond=0), 1, time.time_ns())])


def phones_in(db: Database, persons_sql: str, params: Mapping[str, object]) -> dict[str, str]:
    """Consented phones of the persons a sub-select names (``persons_sql`` returns one ``person_id``)."""
    rows = db.execute(
        "SELECT person_id, phone FROM (SELECT person_id, phone, consent, deleted "
        f"FROM {personal(db.name, 'person_contacts')} FINAL WHERE person_id IN ({persons_sql})) "
        "WHERE deleted = 0 AND consent = 1 AND phone != ''", dict(params))
    return {str(p): str(ph) for p, ph in rows}


def phones_of(db: Database, persons: Iterable[str]) -> dict[str, str]:
    ids = tuple(sorted(set(persons)))
    if not ids:
        return {}
    return phones_in(db, "SELECT arrayJoin(%(ids)s)", {"ids": list(ids)})


def readable(db: Database, principal: Principal, phones: dict[str, str], ward_of: dict[str, str]) -> dict[str, str]:
    """The phones ``principal`` may read: a health center's, for persons whose residence ward is its own,
    or who have none known and whose alert went to its ward (``ward_of``: person -> that ward)."""
    if principal.role != Role.health_center or not phones:
        return {}
    homes = residence_wards(db, phones)
    mine = principal.ward_code
    return {p: ph for p, ph in phones.items()
            if (homes[p] == mine if p in homes else ward_of.get(p) == mine)}


def record_read(db: Database, principal: Principal, persons: Iterable[str], *, case_id: str = "",
                reason: str = "") -> None:
    shown = sorted(set(persons))
    if shown:
        audit.record(db, principal, audit.PHONE_READ, case_id=case_id, params={"persons": shown},
                     result_count=len(shown), reason=reason)
