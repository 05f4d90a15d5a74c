"""Who may see what in the trace API: the access policy, in one place.

- A contact belongs to a ward by the ward rule (``truyvet.alerts.addressee_ward``): a health center
  sees only the contacts, alerts and sites of its ward.
- Personal details (the restricted store) are readable by health roles only, and by a health center
  only for residents of its own ward.
"""

from __future__ import annotations

from trace_api import deps, queries
from trace_api.config import TraceSettings
from trace_api.contacts import Contact
from truyvet import alerts
from truyvet.alerts import addressee_ward
from truyvet.auth import Principal, Role
from truyvet.schema.db import Database

TRACERS = (Role.epidemiologist, Role.health_center)


def may_read_personal(principal: Principal, residence_ward: str) -> bool:
    """Health roles only; a health center only for residents of its own ward."""
    if principal.role in (Role.admin, Role.epidemiologist):
        return True
    return principal.role == Role.health_center and bool(residence_ward) and residence_ward == principal.ward_code


def sees_ward(principal: Principal, ward: str) -> bool:
    """Whether ``principal`` sees what belongs to ``ward`` (a health center: its own ward only)."""
    return principal.role != Role.health_center or ward == principal.ward_code


def labelled_venues(db: Database, principal: Principal, venue_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """Names of the venues the reader may see (``/v1/dashboard/places``): an epidemiologist all; a health
    center those of its ward and those its ward's alerts name; a viewer (aggregate reports) none."""
    if principal.role == Role.viewer:
        return {}
    labels = queries.venue_labels(db, venue_ids)
    if principal.role != Role.health_center:
        return labels
    others = [v for v, (_, _, ward) in labels.items() if ward != principal.ward_code]
    alerted = queries.alerted_venues(db, principal.ward_code, others)
    return {v: label for v, label in labels.items() if label[2] == principal.ward_code or v in alerted}


def contact_wards(
    db: Database, contacts: list[Contact], settings: TraceSettings | None = None
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Each contact's ward (:func:`truyvet.alerts.addressee_ward`), with the personal details read for it.

    :param settings: if given, the two look-ups run at the same time (the second on its own client).
    """
    persons = [c.person_id for c in contacts]
    if settings is not None and contacts:
        pending = deps.in_background(settings, lambda side: queries.person_details(side, persons))
        venue_of = alerts.venue_wards(db, {c.exposures[0].venue_id for c in contacts})
        details = pending.result()
    else:
        details = queries.person_details(db, persons)
        venue_of = alerts.venue_wards(db, {c.exposures[0].venue_id for c in contacts})
    wards = {c.person_id: addressee_ward(details.get(c.person_id, {}).get("residence_ward_code", ""),
                                         venue_of.get(c.exposures[0].venue_id, "")) for c in contacts}
    return wards, details
