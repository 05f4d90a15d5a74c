"""Residence ward from a CCCD card's address, among loaded units."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.persons import Unit, WardMatcher
from truyvet.units import read_units

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "data" / "bac_kan_units.csv"


@pytest.fixture(scope="module")
def matcher() -> WardMatcher:
    return WardMatcher(Unit(*row) for row in read_units(UNITS))


@pytest.mark.parametrize("address, code", [
    ("Tổ 5, Phường Đức Xuân, Thành phố Bắc Kạn, Bắc Kạn", "01840"),
    ("tổ 1, phường sông cầu, tp bắc kạn, tỉnh bắc kạn", "01837"),
    ("Thôn Nà Pài, Xã Dương Quang, Thành phố Bắc Kạn, Bắc Kạn", "01849"),
    ("Tổ 10, Nguyễn Thị Minh Khai, Bắc Kạn", "01834"),
    ("Tổ 3, P. Huyền Tụng, TP Bắc Kạn", "01846"),
    ("Số 12 phố Hàng Bạc, Hoàn Kiếm, Hà Nội", ""),
    ("", ""),
])
def test_ward_of_address(matcher: WardMatcher, address: str, code: str) -> None:
    assert matcher.ward_of(address) == code


def test_decomposed_unicode_address_matches() -> None:
    import unicodedata

    m = WardMatcher(Unit(*row) for row in read_units(UNITS))
    assert m.ward_of(unicodedata.normalize("NFD", "Tổ 2, Phường Xuất Hóa, Bắc Kạn")) == "01855"


def test_same_ward_name_in_two_districts_uses_the_district() -> None:
    m = WardMatcher([
        Unit("d1", "Thành phố Bắc Kạn", "district", "p"), Unit("d2", "Huyện Chợ Mới", "district", "p"),
        Unit("w1", "Phường Sông Cầu", "ward", "d1"), Unit("w2", "Xã Sông Cầu", "commune", "d2"),
    ])
    assert m.ward_of("Thôn 1, Sông Cầu, Huyện Chợ Mới") == "w2"
    assert m.ward_of("Tổ 1, Sông Cầu, Thành phố Bắc Kạn") == "w1"
