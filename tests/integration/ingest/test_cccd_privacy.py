"""CCCD cards: the pseudonym travels, the details land in person_details, the ID number nowhere."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx

from ingest.pseudonym import pseudonym
from tests.integration.ingest.conftest import scan
from tests.integration.topics import all_records, from_start
from truyvet.auth import Role
from truyvet.schema.databases import companions, personal


def _card(id_number: str, name: str, address: str) -> str:
    return f"{id_number}|{secrets.randbelow(10**9):09d}|{name}|05071988|Nữ|{address}|20042021"


def _cccd_scan(venue: str, card: str) -> dict[str, object]:
    item = scan(venue, "unused")
    del item["person_id"]
    return {**item, "cccd_qr": card}


def _kafka_holds(settings, *needles: bytes) -> dict[bytes, list[str]]:
    """Per needle, every record of every topic of this run whose key or value contains it (one read)."""
    with from_start(settings) as consumer:
        topics = sorted(t for t in consumer.topics() if t.startswith(settings.topic_prefix))
    assert settings.topic("scans") in topics and settings.topic("scans-dlq") in topics
    hits: dict[bytes, list[str]] = {needle: [] for needle in needles}
    for rec in all_records(settings, *topics, max_records=50_000):
        for needle in needles:
            if needle in (rec.key or b"") or needle in (rec.value or b""):
                hits[needle].append(f"{rec.topic}[{rec.partition}]@{rec.offset}")
    return hits


def _clickhouse_holds(db, *needles: str) -> dict[str, list[str]]:
    """Per needle, the tables holding it in any column (one query a table), in the data database and
    those kept apart beside it (personal stores, audit log)."""
    hits: dict[str, list[str]] = {needle: [] for needle in needles}
    columns: dict[str, list[str]] = {}
    databases = (db.name, *companions(db.name))
    for database, name, column in db.execute("SELECT database, table, name FROM system.columns "
                                             "WHERE database IN %(d)s", {"d": databases}):
        columns.setdefault(f"{database}.{name}", []).append(column)
    engines = {f"{d}.{n}": e for d, n, e in db.execute("SELECT database, name, engine FROM system.tables "
                                                      "WHERE database IN %(d)s", {"d": databases})}
    params = {f"n{i}": needle for i, needle in enumerate(needles)}
    for table, cols in columns.items():
        if "View" in engines.get(table, ""):
            continue
        counts = ", ".join(
            "countIf(" + " OR ".join(f"position(toString(`{c}`), %({key})s) > 0" for c in cols) + ")"
            for key in params)
        for needle, found in zip(needles, db.execute(f"SELECT {counts} FROM {table}", params)[0], strict=True):
            if found:
                hits[needle].append(table)
    assert personal(db.name, "person_details") in columns and f"{db.name}.visits" in columns
    return hits


def _files_hold(data_dir: Path, prefix: str, *needles: bytes) -> tuple[dict[bytes, list[str]], int]:
    """Logs under the data dir (service, test-run, ClickHouse and Kafka logs) and this run's Kafka
    segments; ClickHouse's data parts are compressed, so the tables are searched by query instead."""
    hits: dict[bytes, list[str]] = {needle: [] for needle in needles}
    searched = 0
    for root, dirs, files in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir).as_posix()
        here = Path(root)
        # data of ClickHouse servers and of Kafka brokers other than the run's (other stacks under
        # .local keep theirs there too): compressed parts, other runs' segments, jars
        if (here.parent.name == "clickhouse" and here.name in ("data", "tmp", "store", "metadata")) or (
                here.parent.name == "kafka" and here.name in ("libs", "data") and rel_root != "kafka/data"):
            dirs[:] = []
            continue
        in_kafka_data = rel_root.startswith("kafka/data")
        if in_kafka_data and rel_root != "kafka/data" and not Path(root).name.startswith(prefix):
            dirs[:] = []
            continue
        for name in files:
            path = Path(root) / name
            is_log = (name.endswith(".log") or "logs" in rel_root.split("/")
                      or rel_root.startswith("test-runs"))
            try:
                if not (is_log or in_kafka_data) or path.stat().st_size > 512 * 2**20:
                    continue
                data = path.read_bytes()
            except FileNotFoundError:  # rotated or compacted away meanwhile
                continue
            searched += 1
            for needle in needles:
                if needle in data:
                    hits[needle].append(f"{rel_root}/{name}")
    return hits, searched


def test_cccd_id_number_is_nowhere_and_details_are_stored(services, token, db, http: httpx.Client) -> None:
    device = token(Role.device)
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Nhà văn hóa tổ 5", "category": "meeting", "ward_code": "01840"})
    venue = r.json()["venue_id"]
    id_a, id_b = (f"0{secrets.randbelow(10**11):011d}" for _ in range(2))
    card_a = _card(id_a, "Hoàng Thị Lụa", "Tổ 5, Phường Đức Xuân, Thành phố Bắc Kạn, Bắc Kạn")
    card_b = _card(id_b, "Lý Văn Đạt", "Thôn Khuổi Cuồng, Xã Nông Thượng, Thành phố Bắc Kạn, Bắc Kạn")
    r = http.post(f"{services.ingest_url}/v1/scans", headers=device, json=_cccd_scan(venue, card_a))
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    broken = card_b.replace("|05071988|", "|35071988|")
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device,
                  json=[_cccd_scan(venue, card_a), _cccd_scan(venue, card_b), _cccd_scan(venue, broken),
                        {**scan(venue, id_b)}])
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2 and [x["index"] for x in r.json()["rejected"]] == [2, 3]
    assert id_b not in r.text and id_a not in r.text

    key = os.environ["TRUYVET_PSEUDONYM_KEY"].encode()
    person_a, person_b = pseudonym(key, id_a), pseudonym(key, id_b)
    deadline = time.monotonic() + 60
    visits = 0
    while visits < 2 and time.monotonic() < deadline:
        visits = db.execute("SELECT uniqExact(person_id) FROM visits WHERE person_id IN (%(a)s, %(b)s)",
                            {"a": person_a, "b": person_b})[0][0]
        time.sleep(0.2)
    assert visits == 2, "the worker did not turn the CCCD scans into visits"

    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT person_id, full_name, birth_date, sex, address, residence_ward_code "
        f"FROM {personal(db.name, 'person_details')} FINAL WHERE person_id IN (%(a)s, %(b)s)",
        {"a": person_a, "b": person_b})}
    assert rows[person_a] == ("Hoàng Thị Lụa", "1988-07-05", "Nữ",
                              "Tổ 5, Phường Đức Xuân, Thành phố Bắc Kạn, Bắc Kạn", "01840")
    assert rows[person_b][0] == "Lý Văn Đạt" and rows[person_b][4] == "01852"

    ids, pseudonym_a = (id_a.encode(), id_b.encode()), person_a.encode()
    in_kafka = _kafka_holds(services.settings, *ids, pseudonym_a)
    in_clickhouse = _clickhouse_holds(db, id_a, id_b, person_a)
    in_files, searched = _files_hold(services.settings.data_dir, services.settings.topic_prefix, *ids, pseudonym_a)
    assert searched > 3
    for id_number in (id_a, id_b):
        assert in_kafka[id_number.encode()] == []
        assert in_clickhouse[id_number] == []
        assert in_files[id_number.encode()] == []
    # the greps can find what is there: the pseudonym is in Kafka, ClickHouse and nothing else
    assert in_kafka[pseudonym_a]
    assert personal(db.name, "person_details") in in_clickhouse[person_a]
    assert any(f.startswith("kafka/data/") for f in in_files[pseudonym_a]), in_files[pseudonym_a]
