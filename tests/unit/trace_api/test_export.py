"""CSV cells that a spreadsheet would run as formulas come out as text."""

from __future__ import annotations

import csv
import io

import pytest

from trace_api.export import neutralise, to_csv


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1"])
def test_formula_cells_get_an_apostrophe(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Nguyễn Văn An", "01840", "2026-11-20T08:00:00Z", "a=b", ""])
def test_plain_cells_are_unchanged(cell: str) -> None:
    assert neutralise(cell) == cell


def test_csv_round_trip_keeps_text_and_quotes() -> None:
    text = to_csv(["name", "n"], [['=HYPERLINK("http://x","y")', 3], ["Chợ, Đức Xuân", None]])
    assert list(csv.reader(io.StringIO(text))) == [["name", "n"], ['\'=HYPERLINK("http://x","y")', "3"],
                                                   ["Chợ, Đức Xuân", ""]]


@pytest.mark.parametrize(("cell", "written"), [
    ("a;=1+1", "a;'=1+1"), ("x, -2", "x, '-2"), ("Chợ; @SUM(A1)", "Chợ; '@SUM(A1)"), ("a; b", "a; b"),
    ("=1;+2", "'=1;'+2"), ("10-5", "10-5")])
def test_formula_starts_after_a_list_separator_are_neutralised(cell: str, written: str) -> None:
    """A spreadsheet in a locale whose list separator is ';' (or ',') splits a cell there."""
    assert neutralise(cell) == written
    for piece in written.split(";") + written.split(","):
        assert not piece.lstrip(" ").startswith(("=", "+", "-", "@"))


def test_local_time_is_vietnam_time_with_its_offset() -> None:
    from datetime import UTC, datetime

    from trace_api.export import local_time

    assert local_time("2026-12-01T20:30:00Z") == "2026-12-02T03:30:00+07:00"
    assert local_time(datetime(2026, 12, 1, 20, 30, tzinfo=UTC)) == "2026-12-02T03:30:00+07:00"
    assert local_time(1796112000) == "2026-12-01T15:00:00+07:00" and local_time(None) == ""
