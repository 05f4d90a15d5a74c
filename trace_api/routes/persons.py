"""Personal details from the restricted store: health roles only, a health center only for its ward."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from trace_api import audit, limits, queries
from trace_api.access import may_read_personal
from trace_api.deps import get_db
from trace_api.models import DetailConflictOut, DetailConflictsPage, PersonOut, error_responses
from truyvet.auth import Principal, Role
from truyvet.schema.db import Database
from truyvet.web import ApiError, require

router = APIRouter(prefix="/v1/persons", tags=["persons"], responses=error_responses(401, 403, 404, 422))


REASON = Query(..., min_length=3, max_length=500, pattern=r"\S",
               description="why the details are read (required; kept in the audit log)")


@router.get("/conflicts", response_model=DetailConflictsPage)
def get_detail_conflicts(
    request: Request,
    reason: str = REASON,
    limit: int = Query(200, ge=1, le=1000),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(Role.epidemiologist, Role.health_center)),
) -> DetailConflictsPage:
    """Cards that disagreed with a person's stored details, to resolve (a health center: its ward's; audited)."""
    limits.spend(request, principal, limits.PERSONAL)
    ward = principal.ward_code if principal.role == Role.health_center else None
    found = [DetailConflictOut(**row) for row in queries.detail_conflicts(db, ward, limit)]
    audit.record(db, principal, audit.CONFLICTS_READ, params={"persons": sorted({c.person_id for c in found})},
                 result_count=len(found), reason=reason)
    return DetailConflictsPage(conflicts=found)


@router.get("/{person_id}", response_model=PersonOut)
def get_person(
    request: Request,
    person_id: str = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    reason: str = REASON,
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(Role.epidemiologist, Role.health_center)),
) -> PersonOut:
    """Name, birth date, sex, address and residence ward of one person (every read is audited)."""
    limits.spend(request, principal, limits.PERSONAL)
    found = queries.person_details(db, [person_id]).get(person_id)
    if found is None or not may_read_personal(principal, found["residence_ward_code"]):
        audit.record(db, principal, audit.PERSON_READ_DENIED, params={"persons": [person_id]}, reason=reason)
        if principal.role == Role.health_center:  # do not tell a ward whether others' residents exist
            raise ApiError(403, "forbidden", "personal details of another ward's resident")
        raise ApiError(404, "not_found", f"no personal details for {person_id}")
    audit.record(
        db, principal, audit.PERSON_READ, params={"persons": [person_id]}, result_count=1, reason=reason
    )
    return PersonOut(person_id=person_id, **found)
