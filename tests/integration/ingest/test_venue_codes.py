"""Venue registration and signed QR codes against the real ingest process, Kafka and ClickHouse."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.integration.ingest.conftest import scan
from tests.integration.topics import records_until
from truyvet.auth import Role
from truyvet.cli import cli


def _register(http: httpx.Client, services, headers: dict[str, str], **extra: object) -> dict[str, object]:
    body = {"name": "Chợ Đức Xuân", "category": "market_shop", "ward_code": "01840", **extra}
    r = http.post(f"{services.ingest_url}/v1/venues", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _zbar(path: Path) -> str:
    result = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.rstrip("\n")


def _scan_with_qr(http: httpx.Client, services, device: dict[str, str], qr: str,
                  **kw: object) -> httpx.Response:
    item = scan("", "p-qr-test", **kw)
    del item["venue_id"]
    item["venue_qr"] = qr
    return http.post(f"{services.ingest_url}/v1/scans", headers=device, json=item)


def test_zbarimg_reads_png_and_poster_as_exactly_the_payload(services, token, http: httpx.Client,
                                                             tmp_path: Path, artifacts: Path) -> None:
    registrar = token(Role.registrar)
    venue = _register(http, services, registrar, name="Quán phở Sông Cầu — Bà Tư", category="food_drink",
                      ward_code="01837")
    payload = str(venue["qr_payload"])
    assert payload.startswith(f"TV1.{venue['key_id']}.") and payload.count(".") == 3
    base = f"{services.ingest_url}/v1/venues/{venue['venue_id']}"
    png = http.get(f"{base}/qr.png", headers=registrar)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    (tmp_path / "qr.png").write_bytes(png.content)
    assert _zbar(tmp_path / "qr.png") == payload

    poster = http.get(f"{base}/poster.png", headers=registrar)
    assert poster.status_code == 200
    (artifacts / "venue-poster.png").write_bytes(poster.content)
    (tmp_path / "poster.png").write_bytes(poster.content)
    assert _zbar(tmp_path / "poster.png") == payload
    with Image.open(tmp_path / "poster.png") as image:
        dpi = image.info["dpi"][0]
        assert round(dpi) == 300
        assert image.width / dpi * 2.54 >= 15 and image.height / dpi * 2.54 >= 15

    svg = http.get(f"{base}/qr.svg", headers=registrar)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content and b"<path" in svg.content

    # the same payload is served again (stored), and a device can scan with it
    again = http.get(f"{base}/qr.png", headers=registrar)
    (tmp_path / "again.png").write_bytes(again.content)
    assert _zbar(tmp_path / "again.png") == payload
    r = _scan_with_qr(http, services, token(Role.device), payload)
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text


def test_unknown_venue_images_are_404(services, token, http: httpx.Client) -> None:
    r = http.get(f"{services.ingest_url}/v1/venues/vnope/qr.png", headers=token(Role.registrar))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_edited_expired_and_unknown_key_payloads_are_refused_with_reason(services, token,
                                                                          http: httpx.Client) -> None:
    registrar, device = token(Role.registrar), token(Role.device)
    now = datetime.now(UTC).replace(microsecond=0)
    good = str(_register(http, services, registrar)["qr_payload"])
    other = str(_register(http, services, registrar)["qr_payload"])
    version, kid, body, sig = good.split(".")
    edited = f"{version}.{kid}.{other.split('.')[2]}.{sig}"  # another venue's content, this one's signature
    funeral = _register(http, services, registrar, category="funeral",
                        valid_from=(now - timedelta(days=2)).isoformat(),
                        valid_until=(now - timedelta(days=1)).isoformat())
    cases = {
        "signature does not match": edited,
        "unknown signing key": f"{version}.kffffffff.{body}.{sig}",
        "not a Truy Vết venue code": "https://example.org/checkin?venue=1",
    }
    for reason, text in cases.items():
        r = _scan_with_qr(http, services, device, text)
        assert r.status_code == 202, r.text
        (item,) = r.json()["rejected"]
        assert reason in item["error"] and item["error"].startswith("venue_qr:"), item
    r = _scan_with_qr(http, services, device, str(funeral["qr_payload"]))
    (item,) = r.json()["rejected"]
    assert "venue_qr: code expired at" in item["error"], item
    r = _scan_with_qr(http, services, device, str(funeral["qr_payload"]), at=now - timedelta(days=1, hours=2))
    assert r.json()["accepted"] == 1, r.text


def test_rotated_key_still_verifies_and_retired_key_is_refused(services, token, http: httpx.Client) -> None:
    registrar, device = token(Role.registrar), token(Role.device)
    old = _register(http, services, registrar)
    runner = CliRunner()
    rotated = runner.invoke(cli, ["qr-key", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    new_kid = rotated.output.strip().splitlines()[-1]
    assert new_kid != old["key_id"]
    deadline = time.monotonic() + 15
    new = _register(http, services, registrar)
    while new["key_id"] != new_kid and time.monotonic() < deadline:
        time.sleep(0.2)
        new = _register(http, services, registrar)
    assert new["key_id"] == new_kid  # the running API signs with the rotated key
    r = _scan_with_qr(http, services, device, str(old["qr_payload"]))
    assert r.json()["accepted"] == 1, r.text  # rotated out, not retired: still accepted

    retired = runner.invoke(cli, ["qr-key", "retire", str(old["key_id"])])
    assert retired.exit_code == 0, retired.output
    rejected: list[dict[str, object]] = []
    while not rejected and time.monotonic() < deadline + 15:
        r = _scan_with_qr(http, services, device, str(old["qr_payload"]))
        assert r.status_code == 202
        rejected = r.json()["rejected"]
        if not rejected:
            time.sleep(0.2)
    assert rejected and "is retired" in str(rejected[0]["error"])
    r = _scan_with_qr(http, services, device, str(new["qr_payload"]))
    assert r.json()["accepted"] == 1, r.text
    keys = http.get(f"{services.ingest_url}/v1/qr-keys", headers=device).json()
    assert new_kid in {k["key_id"] for k in keys} and old["key_id"] not in {k["key_id"] for k in keys}


def test_venue_needs_a_loaded_ward_and_registrar_role(services, token, http: httpx.Client) -> None:
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "X", "category": "bar", "ward_code": "99999"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_ward"
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.device),
                  json={"name": "X", "category": "bar", "ward_code": "01840"})
    assert r.status_code == 403


@pytest.mark.parametrize("category", ["wedding", "karaoke"])
def test_venue_is_published_on_the_compacted_topic(services, token, http: httpx.Client,
                                                   category: str) -> None:
    venue = _register(http, services, token(Role.registrar), category=category, default_stay_minutes=240)
    key = str(venue["venue_id"]).encode()
    read = records_until(services.settings, services.settings.topic("venues"),
                         lambda seen: any(rec.key == key for rec in seen), timeout=15, what="the venue's event")
    found = next(rec for rec in read if rec.key == key)
    assert b'"default_stay_minutes":240' in found.value and category.encode() in found.value
