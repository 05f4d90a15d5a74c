"""Every statement the ingest edge runs works on ClickHouse 18.16 (server) and current ClickHouse (chdb)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from ingest.persons import PersonDetailsStore
from ingest.pseudonym import CccdCard
from ingest.venues import VenueStore
from truyvet.events import Category, Venue
from truyvet.schema.databases import personal
from truyvet.schema.db import Database
from truyvet.settings import PROJECT_ROOT
from truyvet.units import load_units

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


def test_person_details_first_write_stands_and_conflicts_are_kept(any_db: Database) -> None:
    """Issue 13, item 9: a different card for a stored pseudonym does not overwrite it; it is kept aside."""
    load_units(any_db, PROJECT_ROOT / "deploy" / "data" / "bac_kan_units.csv")
    person = f"c_{uuid.uuid4().hex[:20]}"
    store = PersonDetailsStore(any_db)
    card = CccdCard("000000000000", "Nông Văn Dền", date(1941, 3, 2), "Nam", "Tổ 1, Phường Sông Cầu, Bắc Kạn",
                    date(2021, 5, 1))
    assert store.save([(person, card)], reported_by="device-1") == (1, 0)
    assert store.save([(person, card)]) == (0, 0)  # unchanged card: nothing rewritten
    moved = CccdCard(card.id_number, "Kẻ Mạo Danh", card.birth_date, card.sex, "Xã Dương Quang, Bắc Kạn",
                     card.issue_date)
    assert PersonDetailsStore(any_db).save([(person, moved)], reported_by="device-2") == (0, 1)
    assert PersonDetailsStore(any_db).save([(person, card)]) == (0, 0)  # the stored card again: no conflict
    rows = any_db.execute("SELECT full_name, birth_date, residence_ward_code, count() "
                          f"FROM {personal(any_db.name, 'person_details')} FINAL WHERE person_id = %(p)s "
                          "GROUP BY full_name, birth_date, residence_ward_code",
                          {"p": person})
    assert len(rows) == 1 and rows[0][:3] == ("Nông Văn Dền", "1941-03-02", "01837")
    kept = any_db.execute("SELECT full_name, residence_ward_code, stored_ward_code, reported_by "
                          f"FROM {personal(any_db.name, 'person_details_conflicts')} WHERE person_id = %(p)s",
                          {"p": person})
    assert [tuple(r) for r in kept] == [("Kẻ Mạo Danh", "01849", "01837", "device-2")]


def test_venue_and_qr_payload_round_trip(any_db: Database) -> None:
    store = VenueStore(any_db)
    venue = Venue(venue_id=f"v{uuid.uuid4().hex[:16]}", name="Đám cưới nhà văn hóa",
                  category=Category.wedding, ward_code="01840", default_stay_minutes=180, valid_from=NOW,
                  valid_until=NOW, created_at=NOW)
    store.save(venue)
    store.save_qr(venue.venue_id, "TV1.k1.x.y", "k1")
    assert VenueStore(any_db).get(venue.venue_id) == venue
    assert store.qr_payload(venue.venue_id) == "TV1.k1.x.y"
    assert store.get("vmissing") is None and store.qr_payload("vmissing") is None
    load_units(any_db, PROJECT_ROOT / "deploy" / "data" / "bac_kan_units.csv")
    assert store.ward_exists("01840") and not store.ward_exists("058")  # a district is not a ward
    assert store.ward_name("01849") == "Xã Dương Quang"
