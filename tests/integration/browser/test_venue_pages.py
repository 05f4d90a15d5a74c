"""The venue's own pages in headless Chromium against the real stack (issue 15).

Scanning page: Chromium's fake camera plays a Y4M video (written here from PIL images) that shows, in
turn, a printed personal card, an app's code and a CCCD chip card's QR. The page decodes them with the
vendored jsQR, queues the scans in IndexedDB while the network is cut (Playwright ``set_offline``) and
uploads them in a batch once it is back; each becomes a visit in ClickHouse (the CCCD one under its
pseudonym). Registrar's page: registers a venue, shows its poster, downloads the ward's posters (PDF,
every page decoded by zbarimg). Screenshots in test-artifacts/.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import qrcode
from PIL import Image

from ingest.pseudonym import pseudonym
from tests.integration.alerts.receiver import wait_for
from tests.integration.browser.conftest import CHROMIUM_ARGS
from truyvet.auth import Role

pytestmark = pytest.mark.integration
CCCD = "001088004321||Hoàng Thị Lan|02031988|Nữ|Tổ 7, Phường Đức Xuân, Thành phố Bắc Kạn, Bắc Kạn|01012021"
W, H, FPS, FRAMES_EACH = 480, 360, 5, 6


def _frame(text: str) -> Image.Image:
    code = qrcode.QRCode(border=4, box_size=4)
    code.add_data(text.encode("utf-8"))
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    side = min(W, H) - 20
    image = image.resize((side, side), Image.Resampling.NEAREST)
    frame = Image.new("RGB", (W, H), "white")
    frame.paste(image, ((W - side) // 2, (H - side) // 2))
    return frame


def write_y4m(path: Path, texts: list[str]) -> None:
    """A YUV4MPEG2 (4:2:0) video showing each text's QR code for FRAMES_EACH frames (Chromium loops it)."""
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for text in texts:
            y, cb, cr = _frame(text).convert("YCbCr").split()
            planes = y.tobytes() + cb.resize((W // 2, H // 2)).tobytes() + cr.resize((W // 2, H // 2)).tobytes()
            for _ in range(FRAMES_EACH):
                fh.write(b"FRAME\n" + planes)


@pytest.fixture(scope="module")
def setup(services, token, tmp_path_factory) -> dict[str, Any]:
    registrar = token(Role.registrar)
    with httpx.Client(timeout=30) as http:
        venue = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                          json={"name": "Bưu điện Đức Xuân (quét thẻ)", "category": "office",
                                "ward_code": "01840"}).json()
        card = http.post(f"{services.ingest_url}/v1/persons/cards", headers=registrar,
                         json={"residence_ward_code": "01840", "full_name": "Ông Ma Văn Tư"}).json()
    app_person = f"app{secrets.token_hex(6)}"
    video = tmp_path_factory.mktemp("camera") / "codes.y4m"
    write_y4m(video, [card["card_payload"], app_person, CCCD])
    key = os.environ["TRUYVET_PSEUDONYM_KEY"].encode()
    return {"venue": venue, "card": card, "app_person": app_person, "video": video,
            "cccd_person": pseudonym(key, "001088004321"), "device": token(Role.device)}


@pytest.fixture()
def camera_page(setup) -> Iterator[Any]:
    """Chromium with a fake camera playing the codes' video, permission granted, console errors recorded."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={setup['video']}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=args)
        context = browser.new_context(viewport={"width": 900, "height": 1100}, locale="vi-VN", bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        yield page
        context.close()
        browser.close()


def _visits(db, person: str) -> int:
    return int(db.execute("SELECT count() FROM visits WHERE person_id = %(p)s", {"p": person})[0][0])


def test_scanning_page_reads_cards_app_codes_and_cccd_offline_then_uploads(services, db, setup, camera_page,
                                                                          artifacts: Path) -> None:
    page = camera_page
    venue = setup["venue"]["venue_id"]
    page.goto(f"{services.ingest_url}/scanner/?venue={venue}")
    page.fill("#token", setup["device"]["Authorization"].removeprefix("Bearer "))
    page.context.set_offline(True)  # the venue's connection drops before the first guest arrives
    page.click("#setup-form button[type=submit]")
    page.wait_for_function("Number(document.getElementById('queued').textContent) >= 3")
    assert page.inner_text("#sent") == "0"
    assert "Ngoại tuyến" in page.inner_text("#net")
    page.screenshot(path=str(artifacts / "venue-scanner-offline.png"), full_page=True)
    for person in (setup["card"]["person_id"], setup["app_person"], setup["cccd_person"]):
        assert _visits(db, person) == 0  # nothing reached ingest while offline

    page.context.set_offline(False)
    page.wait_for_function("Number(document.getElementById('queued').textContent) === 0 && "
                           "Number(document.getElementById('sent').textContent) >= 3")
    page.screenshot(path=str(artifacts / "venue-scanner-online.png"), full_page=True)
    for person in (setup["card"]["person_id"], setup["app_person"], setup["cccd_person"]):
        wait_for(lambda p=person: _visits(db, p) >= 1, timeout=60, what=f"a visit of {person} at the venue")
    rows = db.execute("SELECT DISTINCT venue_id FROM visits WHERE person_id IN %(p)s",
                      {"p": (setup["card"]["person_id"], setup["app_person"], setup["cccd_person"])})
    assert {r[0] for r in rows} == {venue}
    assert _visits(db, "001088004321") == 0
    assert page.inner_text("#refused") == "0" and page.errors == []


def test_registrar_page_registers_a_venue_shows_its_poster_and_downloads_the_wards_posters(
        services, token, db, page: Any, tmp_path: Path, artifacts: Path) -> None:
    page.goto(f"{services.ingest_url}/registrar/")
    page.fill("#token", token(Role.registrar)["Authorization"].removeprefix("Bearer "))
    name = f"Nhà thi đấu Phùng Chí Kiên {secrets.token_hex(2)}"
    page.fill("#name", name)
    page.select_option("#category", "gym")
    page.fill("#ward_code", "01843")
    page.fill("#address", "Tổ 1, Phường Phùng Chí Kiên")
    page.click("#venue-form button[type=submit]")
    page.wait_for_function("document.getElementById('poster-img').naturalWidth > 1000")
    venue_id = page.inner_text("#venue-id")
    page.screenshot(path=str(artifacts / "registrar-poster.png"), full_page=True)
    page.select_option("#bulk-category", "gym")
    with page.expect_download() as download:
        page.click("#bulk-form button[type=submit]")
    pdf = tmp_path / "posters.pdf"
    download.value.save_as(str(pdf))
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "page")], check=True)
    codes = [subprocess.run(["zbarimg", "--quiet", "--raw", str(p)], capture_output=True, text=True,
                            check=True).stdout.strip() for p in sorted(tmp_path.glob("page-*.png"))]
    (payload,) = db.execute("SELECT qr_payload FROM venue_qr_codes FINAL WHERE venue_id = %(v)s", {"v": venue_id})[0]
    assert payload in codes and all(code.startswith("TV1.") for code in codes)
    assert page.errors == [] and page.outside == []
