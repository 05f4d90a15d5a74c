"""Retention of personal and case records and erasure (README, "Retention"), on ClickHouse 18.16 and current
ClickHouse: each store keeps rows for its period and no longer; the audit log goes by whole months;
``truyvet person erase`` removes a person's personal details, phone, conflicting and printed cards and
residence ward, and the audit keeps only that it happened."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from click.testing import CliRunner

from ingest.persons import CONFLICT_COLUMNS, save_details
from streams.config import StreamsSettings
from streams.retention import expired_months, rules, sweep, sweep_in
from streams.retention_cli import retention
from trace_api import audit, phones
from trace_api.erase import erase, person
from truyvet.followups import COLUMNS as FOLLOWUP_COLUMNS
from truyvet.schema.databases import database_of

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
CARD_COLUMNS = ["person_id", "residence_ward_code", "phone", "card_payload", "key_id", "issued_by", "issued_at"]


def _q(db, table: str) -> str:  # noqa: ANN001
    """A store's name as a query names it: the personal ones in ``<db>_personal``."""
    return f"{database_of(db.name, table)}.{table}"


def _wait_gone(db, sql: str, params: dict) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 60
    while db.execute(sql, params)[0][0]:
        assert time.monotonic() < deadline, f"still there: {sql}"
        time.sleep(0.2)


def test_each_store_keeps_its_period_and_no_longer(any_db) -> None:
    tag = uuid.uuid4().hex[:8]
    old, kept = f"old{tag}", f"new{tag}"
    s = StreamsSettings()
    ages = {r.table: r.days for r in rules(s)}
    assert ages == {"person_details": 28, "person_details_conflicts": 28, "person_wards": 28, "person_contacts": 60,
                    "person_cards": 60, "citizens": 365, "cases": 90, "alerts": 90, "follow_ups": 90,
                    "audit_log": 730}  # the documented defaults

    def at(table: str, older: bool) -> datetime:
        return NOW - timedelta(days=ages[table] + 1 if older else ages[table] - 1)

    for who, older in ((old, True), (kept, False)):
        save_details(any_db, [(who, "Trần Thị Thử", "1990-01-01", "Nữ", "", "01834", "t", at("person_details", older))])
        any_db.insert(_q(any_db, "person_details_conflicts"), CONFLICT_COLUMNS,
                      [(who, "Kẻ Khác", "1991-01-01", "Nữ", "", "01834", "01834", "d", at("person_details", older))])
        any_db.insert(_q(any_db, "person_contacts"), phones.COLUMNS,
                      [(who, "0912345678", 1, at("person_contacts", older), 0, 1)])
        any_db.insert(_q(any_db, "person_cards"), CARD_COLUMNS,
                      [(who, "01834", "0912345678", "card", "k1", "t", at("person_cards", older))])
        any_db.insert("citizens", ["secret_hash", "person_id", "created_at", "deleted", "version"],
                      [(f"h{who}", who, at("citizens", older), 0, 1)])
        any_db.insert("cases", ["case_id", "person_id", "infectious_from", "infectious_to", "label", "created_by",
                                "created_at"], [(f"case_{who}", who, at("cases", older) - timedelta(days=3),
                                                 at("cases", older), "", "t", at("cases", older))])
        any_db.insert("alerts", ["alert_id", "case_id", "person_id", "generation", "ward_code", "venue_id",
                                 "created_at", "status", "attempts", "last_error", "delivered_at", "updated_at",
                                 "version"],
                      [(f"al_{who}", f"case_{who}", who, 1, "01834", "v", at("alerts", older), "delivered", 1, "",
                        NOW, NOW, 1)])
        made = at("follow_ups", older)
        any_db.insert("follow_ups", FOLLOWUP_COLUMNS,
                      [("01834", f"case_{who}", who, 1, "new", "", made, made, "system", "", 0)])
    any_db.insert(audit.audit_table(any_db), audit.COLUMNS, [
        (NOW - timedelta(days=800), tag, "admin", "", "case.trace", "", "{}", 0, ""),   # a month long gone
        (NOW - timedelta(days=700), tag, "admin", "", "case.trace", "", "{}", 0, "")])  # kept

    removed = sweep_in(any_db, rules(s), now=NOW)
    assert all(removed[t] >= 1 for t in ages), removed
    for table in (t for t in ages if t != "audit_log"):
        _wait_gone(any_db, f"SELECT count() FROM {_q(any_db, table)} WHERE person_id = %(p)s", {"p": old})
        assert any_db.execute(f"SELECT count() FROM {_q(any_db, table)} WHERE person_id = %(p)s",
                              {"p": kept})[0][0] == 1, table
    rows = any_db.execute(f"SELECT at FROM {audit.audit_table(any_db)} WHERE actor = %(a)s", {"a": tag})
    assert [r[0].replace(tzinfo=UTC) for r in rows] == [NOW - timedelta(days=700)]
    assert sweep_in(any_db, rules(s), now=NOW)["person_details"] == 0  # nothing left to delete: no mutation


def test_only_whole_months_before_the_cutoff_go() -> None:
    cutoff = datetime(2024, 12, 2, tzinfo=UTC)
    assert expired_months(["202410", "202411", "202412", "202501", "x"], cutoff=cutoff) == ["202410", "202411"]


def test_person_erase_removes_details_and_phone_and_audits_that_it_happened(any_db) -> None:
    who, other = f"p{uuid.uuid4().hex[:10]}", f"p{uuid.uuid4().hex[:10]}"
    for p in (who, other):
        save_details(any_db, [(p, "Lê Văn Xoá", "1980-05-05", "Nam", "Tổ 3, Phường Đức Xuân", "01834", "cccd", NOW)])
        any_db.insert(_q(any_db, "person_details_conflicts"), CONFLICT_COLUMNS,
                      [(p, "Lê Văn Khác", "1980-05-05", "Nam", "Tổ 4", "01834", "01834", "d", NOW)])
        any_db.insert(_q(any_db, "person_cards"), CARD_COLUMNS, [(p, "01834", "0987654321", "card", "k1", "t", NOW)])
        phones.set_phone(any_db, p, "0987654321")
    held = erase(any_db, who, actor="cli:test")
    stores = {"person_details": 1, "person_details_conflicts": 1, "person_contacts": 1, "person_cards": 1,
              "person_wards": 1}
    assert held == stores
    for table in stores:
        assert any_db.execute(f"SELECT count() FROM {_q(any_db, table)} WHERE person_id = %(p)s",
                              {"p": who})[0][0] == 0, table
        assert any_db.execute(f"SELECT count() FROM {_q(any_db, table)} WHERE person_id = %(p)s",
                              {"p": other})[0][0] >= 1, table
    log = audit.audit_table(any_db)
    (entry,) = any_db.execute(f"SELECT actor, role, params, reason FROM {log} WHERE action = 'person.erase' "
                              "AND params LIKE %(p)s", {"p": f"%{who}%"})
    assert entry[0] == "cli:test" and orjson.loads(entry[2]) == {
        "person_id": who, "stores": stores}
    everything = " ".join(str(c) for row in any_db.execute(f"SELECT * FROM {log} WHERE params LIKE %(p)s",
                                                            {"p": f"%{who}%"}) for c in row)
    assert "Lê Văn Xoá" not in everything and "0987654321" not in everything and "Đức Xuân" not in everything


def test_person_erase_command_refuses_an_id_number() -> None:
    result = CliRunner().invoke(person, ["erase", "001234567890"])
    assert result.exit_code == 2 and "not an ID number" in result.output


def test_the_workers_sweep_runs_as_the_retention_account_and_the_operators_run_as_admin(db) -> None:
    """The worker's leader sweeps as the retention account (no audit log: out of its reach); ``truyvet
    retention run`` (admin) applies every rule, the audit log's months included."""
    who = f"p{uuid.uuid4().hex[:10]}"
    save_details(db, [(who, "Hoàng Thị Cũ", "1970-01-01", "Nữ", "", "01834", "t",
                       datetime.now(UTC) - timedelta(days=40))])
    removed = sweep(StreamsSettings())
    assert "audit_log" not in removed and removed["person_details"] >= 1
    _wait_gone(db, f"SELECT count() FROM {_q(db, 'person_details')} WHERE person_id = %(p)s", {"p": who})
    result = CliRunner().invoke(retention, ["run"])
    assert result.exit_code == 0, result.output
    assert "audit_log" in result.output and "person_contacts" in result.output
