"""Follow-up lists of ward health stations (docs/api.md, "Follow-up and people"): list, change, register
a contact who tested positive as a new case.

The records are written by the alert dispatcher (status ``new``, :mod:`truyvet.followups`) for every
alert it reads, so every contact of every case is there, also contacts found later by late scans. A
health center reads and changes only its ward's records (403 elsewhere); every list, change and
phone read is audited, and every change keeps who and when (``updated_by``, ``updated_at``).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from trace_api import audit, cases, deps, export, phones
from trace_api.config import TraceSettings
from trace_api.models import CaseCreate
from trace_api.timefmt import iso_seconds
from truyvet.auth import Principal, Role
from truyvet.followups import COLUMNS, FollowUpStatus, changed_row
from truyvet.schema.db import Database
from truyvet.web import ApiError

READ = ["ward_code", "case_id", "person_id", "generation", "status", "note", "created_at", "updated_at",
        "updated_by", "new_case_id"]
EXPORT_HEADER = ["Mã ca bệnh", "Mã người", "Cấp (F)", "Mã phường/xã", "Trạng thái", "Ghi chú", "Điện thoại",
                 "Cập nhật lúc", "Người cập nhật", "Ca bệnh mới"]
STATUS_VI = {"new": "mới", "called": "đã gọi", "unreachable": "không liên lạc được", "quarantined": "đã cách ly",
             "tested_negative": "xét nghiệm âm tính", "tested_positive": "xét nghiệm dương tính",
             "released": "kết thúc theo dõi"}


def ward_scope(principal: Principal, ward_code: str | None) -> str | None:
    """A health center gets its own ward (another is 403); the others what they ask for (None: all)."""
    if principal.role == Role.health_center:
        if ward_code is not None and ward_code != principal.ward_code:
            raise ApiError(403, "forbidden", "a health center works only its own ward's follow-up list")
        return principal.ward_code
    return ward_code


# The latest version of each record (FINAL; the filters are on key columns that never change for a
# record, the status is filtered after it, here), times as epoch seconds: no datetime objects per row.
# FINAL measured faster than argMax grouped by the key for a 20,000-record ward (BENCHMARKS.md).
LIST_SQL = ("SELECT ward_code, case_id, person_id, generation, status, note, toUInt32(updated_at), updated_by, "
            "new_case_id FROM follow_ups FINAL WHERE {where} ORDER BY case_id, generation, person_id")


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    rec = dict(zip(READ, row, strict=True))
    return {"case_id": rec["case_id"], "person_id": rec["person_id"], "generation": int(rec["generation"]),
            "ward_code": rec["ward_code"], "status": rec["status"], "note": rec["note"], "phone": None,
            "updated_at": iso_seconds(int(rec["updated_at"].timestamp())), "updated_by": rec["updated_by"],
            "new_case_id": rec["new_case_id"] or None}


def _phones(settings: TraceSettings, principal: Principal, where: list[str],
            params: dict[str, object]) -> Future[dict[str, str]]:
    """The readable phones of the persons the list's filter names, read beside the list (own client)."""

    def read(side: Database) -> dict[str, str]:
        found = phones.phones_in(side, "SELECT person_id FROM follow_ups WHERE " + " AND ".join(where), params)
        # Every record of a health center's list is in its ward: the ward rule gives it the persons
        # whose residence is not known elsewhere.
        return phones.readable(side, principal, found, {p: principal.ward_code for p in found})

    return deps.in_background(settings, read)


def list_follow_ups(db: Database, settings: TraceSettings, principal: Principal, *, ward_code: str | None,
                    case_id: str | None, status: FollowUpStatus | None, generation: int | None, fmt: str,
                    reason: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(records, counts per status before the status filter), phones where readable; audited."""
    ward = ward_scope(principal, ward_code)
    where: list[str] = []
    params: dict[str, object] = {}
    if ward is not None:
        where.append("ward_code = %(ward)s")
        params["ward"] = ward
    if case_id is not None:
        where.append("case_id = %(case)s")
        params["case"] = case_id
    if generation is not None:
        where.append("generation = %(gen)s")
        params["gen"] = generation
    looked_up = _phones(settings, principal, where, params) if principal.role == Role.health_center else None
    raw = db.execute(LIST_SQL.format(where=" AND ".join(where) or "1 = 1"), params)
    counts = Counter(r[4] for r in raw)
    wanted = None if status is None else status.value
    shown = looked_up.result() if looked_up is not None else {}
    rows = [{"case_id": c, "person_id": p, "generation": g, "ward_code": w, "status": st, "note": n,
             "phone": shown.get(p), "updated_at": iso_seconds(t), "updated_by": by, "new_case_id": nc or None}
            for w, c, p, g, st, n, t, by, nc in raw if wanted is None or st == wanted]
    read = [r["person_id"] for r in rows if r["phone"]]
    # Both audit entries are written at once, each on its own client; no answer without them.
    audited = deps.in_background(settings, lambda side: phones.record_read(
        side, principal, read, case_id=case_id or "", reason=reason)) if read else None
    audit.record(db, principal, audit.FOLLOWUP_LIST, case_id=case_id or "",
                 params={"ward_code": ward or "", "status": wanted or "", "generation": generation or 0,
                         "format": fmt},
                 result_count=len(rows), reason=reason)
    if audited is not None:
        audited.result()
    return rows, {s.value: counts.get(s.value, 0) for s in FollowUpStatus}


def _current(db: Database, principal: Principal, case_id: str, person_id: str) -> dict[str, Any]:
    rows = db.execute(f"SELECT {', '.join(READ)} FROM follow_ups FINAL "
                      "WHERE case_id = %(c)s AND person_id = %(p)s", {"c": case_id, "p": person_id})
    if not rows:
        raise ApiError(404, "not_found", f"no follow-up record of {person_id} for case {case_id}")
    rec = dict(zip(READ, rows[0], strict=True))
    if principal.role == Role.health_center and rec["ward_code"] != principal.ward_code:
        raise ApiError(403, "forbidden", "a health center changes only its own ward's follow-up records")
    return rec


def _write(db: Database, principal: Principal, rec: dict[str, Any], *, status: str, note: str,
           new_case_id: str | None = None) -> dict[str, Any]:
    row = changed_row(rec, status=status, note=note, by=principal.actor, new_case_id=new_case_id)
    db.insert("follow_ups", COLUMNS, [row])
    return _item(tuple(row[:len(READ)]))


def update(db: Database, principal: Principal, case_id: str, person_id: str, *, status: FollowUpStatus,
           note: str | None, reason: str) -> dict[str, Any]:
    """Change a record's status (and note; omitted: kept), audited with the status before and after."""
    rec = _current(db, principal, case_id, person_id)
    item = _write(db, principal, rec, status=status.value, note=rec["note"] if note is None else note)
    audit.record(db, principal, audit.FOLLOWUP_UPDATE, case_id=case_id,
                 params={"person_id": person_id, "from": rec["status"], "to": status.value,
                         "note_changed": note is not None and note != rec["note"]},
                 result_count=1, reason=reason)
    found = phones.readable(db, principal, phones.phones_of(db, [person_id]), {person_id: rec["ward_code"]})
    item["phone"] = found.get(person_id)
    phones.record_read(db, principal, found, case_id=case_id, reason=reason)
    return item


def register_case(db: Database, settings: TraceSettings, principal: Principal, case_id: str, person_id: str, *,
                  infectious_from: datetime, infectious_to: datetime, label: str, reason: str) -> str:
    """Register a contact who tested positive as a new case (traced and alerted from them at once)."""
    rec = _current(db, principal, case_id, person_id)
    if rec["status"] != FollowUpStatus.tested_positive.value:
        raise ApiError(409, "conflict", "only a contact whose status is tested_positive is registered as a case")
    if rec["new_case_id"]:
        raise ApiError(409, "conflict", f"already registered as case {rec['new_case_id']}")
    body = CaseCreate(person_id=person_id, infectious_from=infectious_from, infectious_to=infectious_to,
                      label=label or f"F{rec['generation']} của {case_id}")
    new_case = cases.register(db, settings, principal, body)
    _write(db, principal, rec, status=rec["status"], note=rec["note"], new_case_id=new_case)
    audit.record(db, principal, audit.FOLLOWUP_CASE, case_id=case_id,
                 params={"person_id": person_id, "new_case_id": new_case}, result_count=1, reason=reason)
    return new_case


def export_table(rows: list[dict[str, Any]], ward: str | None) -> export.Table:
    return export.Table(EXPORT_HEADER, [
        [r["case_id"], r["person_id"], r["generation"], r["ward_code"], STATUS_VI.get(r["status"], r["status"]),
         r["note"], r["phone"] or "", export.local_time(r["updated_at"]), r["updated_by"], r["new_case_id"] or ""]
        for r in rows], f"follow-ups-{ward or 'all'}")
