"""Reading the roster CSV: contract columns, categories checked, duplicates folded, errors name the line."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from trace_api.export import to_csv
from trace_api.reports import day_bounds
from truyvet.events import Category
from truyvet.roster import RosterError, read_roster


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_vietnamese_rows_and_folds_identical_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeffward_code,category,name,address\n"
                            "01840,market_shop,Chợ Đức Xuân,Tổ 1 phường Đức Xuân\n"
                            "01840,market_shop,Chợ Đức Xuân,Tổ 1 phường Đức Xuân\n"
                            "01837, karaoke ,Karaoke Sông Cầu,\n")
    rows = read_roster(path)
    assert [(r.ward_code, r.category, r.name) for r in rows] == [
        ("01840", Category.market_shop, "Chợ Đức Xuân"), ("01837", Category.karaoke, "Karaoke Sông Cầu")]


@pytest.mark.parametrize(("text", "message"), [
    ("ward_code,category,name\n01840,bar,X\n", "missing columns ['address']"),
    ("ward_code,category,name,address\n01840,pub,X,\n", ":2: unknown category 'pub'"),
    ("ward_code,category,name,address\n01840,bar,X,\n,bar,Y,\n", ":3: ward_code and name are required"),
])
def test_bad_files_are_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RosterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_roster(_write(tmp_path, text))


@pytest.mark.parametrize("value", ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_of_the_coverage_csv_are_neutralised(value: str) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(["ward_name"], [[value]]), newline="")))
    assert rows == [["ward_name"], ["'" + value]]


def test_plain_cells_are_kept() -> None:
    text = to_csv(["a", "b", "c", "d"], [["Phường Đức Xuân", 12, "", None]])
    assert list(csv.reader(io.StringIO(text)))[1] == ["Phường Đức Xuân", "12", "", ""]


def test_reporting_day_is_vietnam_local_by_default() -> None:
    from datetime import UTC, date, datetime

    start, end = day_bounds(date(2021, 7, 1), 7 * 60)
    assert start == datetime(2021, 6, 30, 17, tzinfo=UTC) and end == datetime(2021, 7, 1, 17, tzinfo=UTC)
