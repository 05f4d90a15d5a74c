"""Citizens of the app (docs/api.md, "Follow-up and people"): their pseudonymous id and secret, their own
exposure status, the phone they give with consent.

- ``POST /v1/citizens`` makes a new pseudonymous id (``c_`` + 22 URL-safe characters: the scan's
  ``person_id`` pattern, never a run of digits, so ingest and the Kafka intake accept it as it is) and a
  secret; only the secret's SHA-256 is stored (a 256-bit random secret needs no slow hash).
- ``GET /v1/me/exposure`` answers under the same semantics as traces: the cases whose alerts named
  this person (raised at registration or later by the worker from late scans) are traced again
  (depth 2, the configured W and M), and the person's place in the current answer is what is shown:
  ``f1`` if they are a generation-1 contact of any case, else ``f2``, else ``none``. An exposure shows the
  venue, its ward, the local date and the visit of the case (or, for F2, of the F1 met there), never
  anyone's id.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from trace_api import alerting, cases, export, queries
from trace_api.config import TraceSettings
from trace_api.contacts import trace
from trace_api.timefmt import iso_seconds
from truyvet.auth import CITIZEN_SECRET_PREFIX, citizen_of, hash_token
from truyvet.schema.db import Database
from truyvet.web import ApiError

ADVICE = {
    "f1": "Bạn đã ở cùng địa điểm và thời gian với một ca bệnh (F1). Hãy tự cách ly tại nhà, theo dõi sức khỏe "
          "và liên hệ ngay trạm y tế phường/xã nơi bạn ở; trạm y tế có thể gọi cho bạn.",
    "f2": "Bạn đã tiếp xúc với một người tiếp xúc gần ca bệnh (F2). Hãy theo dõi sức khỏe, hạn chế tiếp xúc "
          "và liên hệ trạm y tế phường/xã nếu có triệu chứng.",
    "none": "Chưa ghi nhận bạn tiếp xúc với ca bệnh nào. Tiếp tục quét mã QR khi đến các địa điểm.",
}
COLUMNS = ["secret_hash", "person_id", "created_at", "deleted", "version"]


def create(db: Database) -> tuple[str, str]:
    """A new citizen: (person_id, secret); the secret is shown once."""
    person_id = "c_" + secrets.token_urlsafe(16)
    secret = CITIZEN_SECRET_PREFIX + secrets.token_urlsafe(32)
    db.insert("citizens", COLUMNS, [(hash_token(secret), person_id, datetime.now(UTC).replace(microsecond=0), 0,
                                     time.time_ns())])
    return person_id, secret


def person_of(db: Database, secret: str) -> str:
    """The citizen whose secret this is; 401 for an unknown or removed one."""
    person = citizen_of(db, secret)
    if person is None:
        raise ApiError(401, "unauthorized", "unknown citizen secret", headers={"WWW-Authenticate": "Bearer"})
    return person


def _cases_naming(db: Database, person_id: str) -> list[str]:
    rows = db.execute("SELECT DISTINCT case_id FROM alerts WHERE person_id = %(p)s ORDER BY case_id",
                      {"p": person_id})
    return [str(r[0]) for r in rows]


def exposure(db: Database, settings: TraceSettings, person_id: str) -> dict[str, Any]:
    """``{status, exposures, advice}`` of this person (see the module)."""
    found: list[tuple[int, Any]] = []  # (generation, exposure)
    params = cases.trace_params(settings, alerting.depth())
    for case_id in _cases_naming(db, person_id):
        period = queries.case_period(db, case_id)
        if period is None:
            continue
        case_person, start, end = period
        if case_person == person_id:
            continue
        for contact in trace(db, person_id=case_person, start=start, end=end, params=params).contacts:
            if contact.person_id == person_id:
                found.extend((contact.generation, e) for e in contact.exposures)
    if not found:
        return {"status": "none", "exposures": [], "advice": ADVICE["none"]}
    status = "f1" if any(g == 1 for g, _ in found) else "f2"
    labels = queries.venue_labels(db, {e.venue_id for _, e in found})
    wards = queries.ward_names(db)
    exposures, seen = [], set()
    for _, e in sorted(found, key=lambda x: (x[1].contact_visit.t_in, x[1].case_visit.t_in)):
        name, _category, ward = labels.get(e.venue_id, ("", "", ""))
        key = (e.venue_id, e.case_visit.t_in, e.case_visit.t_out)
        if key in seen:
            continue
        seen.add(key)
        exposures.append({"venue_name": name, "ward_name": wards.get(ward, ""),
                          "date": export.local_time(e.contact_visit.t_in)[:10],
                          "case_visit": {"t_in": iso_seconds(e.case_visit.t_in),
                                         "t_out": iso_seconds(e.case_visit.t_out)}})
    return {"status": status, "exposures": exposures, "advice": ADVICE[status]}
