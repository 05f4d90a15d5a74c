"""The audit log, for admins (read-only: nothing in the API edits it)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from trace_api import audit
from trace_api.config import TraceSettings
from trace_api.deps import get_db
from trace_api.models import AuditEntryOut, AuditPage, Time, error_responses
from truyvet.auth import Principal, Role
from truyvet.schema.db import Database
from truyvet.web import require

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=error_responses(401, 403, 422))


@router.get("", response_model=AuditPage)
def get_audit(
    request: Request,
    since: Time | None = Query(None, description="RFC 3339; entries at or after"),
    until: Time | None = Query(None, description="RFC 3339; entries at or before"),
    action: str | None = Query(None, max_length=64),
    case_id: str | None = Query(None, max_length=64),
    actor: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(Role.admin)),
) -> AuditPage:
    """Audit entries, newest first: who did what, when, with which parameters and result count."""
    settings: TraceSettings = request.app.state.settings
    rows = audit.entries(
        db,
        since=since,
        until=until,
        action=action,
        case_id=case_id,
        actor=actor,
        limit=min(limit, settings.audit_page_limit),
    )
    # Reading the log is itself logged: who looked at whose traces is part of the record.
    audit.record(db, principal, audit.AUDIT_READ,
                 params={"since": since.isoformat() if since else "", "until": until.isoformat() if until else "",
                         "action": action or "", "case_id": case_id or "", "actor": actor or ""},
                 result_count=len(rows))
    return AuditPage(entries=[AuditEntryOut(**r) for r in rows])
