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
