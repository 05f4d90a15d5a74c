"""Compliance (issue 15): the matching rule between venues and roster rows, statuses and roll-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from trace_api.compliance import EstablishmentStatus, VenueRow, link, status_of, summary
from truyvet.events import Category
from truyvet.roster import Establishment, match_key, roster_id

PHO = Establishment("01840", Category.food_drink, "Quán Phở Đức Xuân", "Tổ 15, Phường Đức Xuân, TP. Bắc Kạn")
PHO2 = Establishment("01840", Category.food_drink, "Quán Phở Đức Xuân 2", "Tổ 16, Phường Đức Xuân, TP. Bắc Kạn")
SCHOOL = Establishment("01843", Category.school, "Trường THCS Bắc Kạn", "")
T = datetime(2026, 12, 1, tzinfo=UTC)


def venue(vid: str, est: Establishment, name: str | None = None, address: str | None = None, ward: str | None = None,
          rid: str = "") -> VenueRow:
    return VenueRow(vid, ward or est.ward_code, est.category.value, est.name if name is None else name,
                    est.address if address is None else address, T, rid)


def test_match_key_drops_diacritics_case_punctuation_and_spaces() -> None:
    assert match_key("  Quán  Phở, ĐỨC-Xuân. ") == "quan pho duc xuan"
    assert match_key("Tổ 15, P. Đức Xuân") == match_key("to 15 p duc xuan")
    assert match_key("Quán Phở Đức Xuân 2") != match_key("Quán Phở Đức Xuân")


def test_roster_id_is_stable_across_spellings_and_differs_between_establishments() -> None:
    assert PHO.roster_id == roster_id("01840", "quan pho duc xuan", "to 15 phuong duc xuan tp bac kan")
    assert PHO.roster_id != PHO2.roster_id
    assert roster_id("01840", PHO.name, PHO.address) != roster_id("01843", PHO.name, PHO.address)


@pytest.mark.parametrize(("name", "address", "ward", "linked"), [
    ("quan pho duc xuan", "to 15 phuong duc xuan tp bac kan", None, True),      # no diacritics, no case
    ("QUÁN PHỞ  ĐỨC XUÂN!", "Tổ 15 - Phường Đức Xuân - TP Bắc Kạn", None, True),  # punctuation and spaces
    ("Quán Phở Đức Xuân", "Tổ 15, Phường Đức Xuân, TP. Bắc Kạn", "01843", False),  # same name, another ward
    ("Quán Phở Đức Xuân 2", "Tổ 15, Phường Đức Xuân, TP. Bắc Kạn", None, False),   # a different establishment
    ("Quán Phở Đức Xuyên", "Tổ 15, Phường Đức Xuân, TP. Bắc Kạn", None, False),    # one letter off: not guessed
    ("Quán Phở Đức Xuân", "Tổ 51, Phường Đức Xuân, TP. Bắc Kạn", None, False),     # another house
    ("Quán Phở Đức Xuân", "", None, True),                                      # no address: a unique name
])
def test_near_miss_names_are_not_matched(name: str, address: str, ward: str | None, linked: bool) -> None:
    found = link([PHO, PHO2, SCHOOL], [venue("v1", PHO, name, address, ward)])
    assert (found.get(PHO.roster_id) == ["v1"]) is linked, found


def test_an_explicit_roster_id_wins_over_names() -> None:
    found = link([PHO, PHO2], [venue("v1", PHO, name="Phở gia truyền", address="", rid=PHO2.roster_id)])
    assert found == {PHO2.roster_id: ["v1"]}


def test_a_unique_name_without_address_needs_uniqueness() -> None:
    twin = Establishment("01840", Category.food_drink, "Quán Phở Đức Xuân", "Tổ 99, Phường Đức Xuân")
    assert link([PHO, twin], [venue("v1", PHO, address="")]) == {}


def test_status_by_scans_in_the_last_days() -> None:
    day = date(2026, 12, 10)
    days = {"v1": {date(2026, 12, 8)}, "v2": {date(2026, 12, 7)}}
    assert status_of([], days, day, 3) == "not_registered"
    assert status_of(["v1"], days, day, 3) == "scanning"
    assert status_of(["v2"], days, day, 3) == "silent"
    assert status_of(["v2"], days, day, 4) == "scanning"
    assert status_of(["v1"], days, date(2026, 12, 7), 3) == "silent"  # a later scan does not count


def test_summary_rolls_up_the_units() -> None:
    units = {"06": ("Tỉnh Bắc Kạn", "province", ""), "058": ("TP Bắc Kạn", "district", "06"),
             "01840": ("Phường Đức Xuân", "ward", "058"), "01843": ("Xã Dương Quang", "commune", "058")}
    rows = [EstablishmentStatus("r1", "01840", "food_drink", "a", "", "scanning"),
            EstablishmentStatus("r2", "01840", "school", "b", "", "silent"),
            EstablishmentStatus("r3", "01843", "school", "c", "", "not_registered")]
    wards = summary(rows, units, "ward")
    assert [(u["code"], u["establishments"], u["scanning"]) for u in wards] == [("01840", 2, 1), ("01843", 1, 0)]
    (district,) = summary(rows, units, "district")
    assert (district["code"], district["establishments"], district["silent"], district["not_registered"]) == (
        "058", 3, 1, 1)
    (province,) = summary(rows, units, "province")
    assert province["code"] == "06" and province["scanning_share"] == round(1 / 3, 4)
    by_cat = summary(rows, units, "district", by_category=True)
    assert [(u["category"], u["establishments"]) for u in by_cat] == [("food_drink", 1), ("school", 2)]
