"""``truyvet units load FILE.csv``: units are data; a re-load replaces units with the same code, and a
ward loaded this way can get venues at once."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from click.testing import CliRunner

from truyvet.auth import Role
from truyvet.cli import cli


def test_units_load_replaces_by_code_and_new_wards_take_venues(services, token, db, http: httpx.Client,
                                                                 tmp_path: Path) -> None:
    code = f"9{uuid.uuid4().int % 10**6:06d}"
    csv = tmp_path / "units.csv"
    csv.write_text(f"code,name,level,parent_code\n{code},Xã Thử Nghiệm,commune,058\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["units", "load", str(csv)])
    assert result.exit_code == 0 and "loaded 1 units" in result.output, result.output
    csv.write_text(f"code,name,level,parent_code\n{code},Phường Thử Nghiệm,ward,058\n", encoding="utf-8")
    assert runner.invoke(cli, ["units", "load", str(csv)]).exit_code == 0
    rows = db.execute("SELECT name, level FROM units FINAL WHERE code = %(c)s", {"c": code})
    assert rows == [("Phường Thử Nghiệm", "ward")]

    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Trạm y tế", "category": "health_facility", "ward_code": code})
    assert r.status_code == 201, r.text

    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,level,parent_code\nx1,Ấp Một,hamlet,058\n", encoding="utf-8")
    result = runner.invoke(cli, ["units", "load", str(bad)])
    assert result.exit_code != 0 and "hamlet" in result.output
