"""``truyvet demo``: start the stack, load Bắc Kạn's units, scan, register a case, print its contacts."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import click
import httpx
from rich.console import Console

from truyvet.auth import Role, create_token
from truyvet.settings import PROJECT_ROOT, common_settings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.services import Stack
from truyvet.units import load_units

console = Console()


def _scan(venue_id: str, person_id: str, at: datetime, direction: str = "in") -> dict[str, str]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": at.isoformat(), "direction": direction,
            "venue_id": venue_id, "person_id": person_id}


@click.command()
def demo() -> None:
    """Run the end-to-end demo against the local stack (starting it if needed)."""
    settings = common_settings()
    with console.status("starting the stack..."):
        Stack(settings).up()
    db = ensure_database(settings)
    try:
        load_units(db, PROJECT_ROOT / "deploy" / "data" / "bac_kan_units.csv")
        tokens = {role: create_token(db, role=role, name=f"demo-{role.value}")
                  for role in (Role.registrar, Role.device, Role.epidemiologist)}
    finally:
        db.close()
    auth = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
    with httpx.Client(timeout=30) as http:
        venues = {}
        for name, category, ward in (("Chợ Đức Xuân", "market_shop", "01840"),
                                     ("Quán phở Sông Cầu", "food_drink", "01837")):
            r = http.post(f"{settings.ingest_url}/v1/venues", headers=auth[Role.registrar],
                          json={"name": name, "category": category, "ward_code": ward})
            r.raise_for_status()
            venues[name] = r.json()["venue_id"]
        market, pho = venues["Chợ Đức Xuân"], venues["Quán phở Sông Cầu"]
        now = datetime.now(UTC).replace(microsecond=0)
        case_person, contact, stranger = (f"demo-{uuid.uuid4().hex[:8]}" for _ in range(3))
        scans = [
            _scan(market, case_person, now - timedelta(hours=3)),
            _scan(market, case_person, now - timedelta(hours=2, minutes=30), "out"),
            _scan(market, contact, now - timedelta(hours=2, minutes=50)),
            _scan(pho, stranger, now - timedelta(hours=3)),
        ]
        r = http.post(f"{settings.ingest_url}/v1/scans/batch", headers=auth[Role.device], json=scans)
        r.raise_for_status()
        console.print(f"posted {len(scans)} scans: {r.json()}")
        r = http.post(f"{settings.trace_url}/v1/cases", headers=auth[Role.epidemiologist],
                      json={"person_id": case_person, "label": "demo case",
                            "infectious_from": (now - timedelta(days=2)).isoformat(),
                            "infectious_to": now.isoformat()})
        r.raise_for_status()
        case_id = r.json()["case_id"]
        deadline = time.monotonic() + 60
        contacts: list[dict[str, object]] = []
        with console.status("waiting for the scans to become visits..."):
            while time.monotonic() < deadline and not contacts:
                r = http.get(f"{settings.trace_url}/v1/cases/{case_id}/contacts",
                             params={"depth": 2}, headers=auth[Role.epidemiologist])
                r.raise_for_status()
                contacts = r.json()["contacts"]
                if not contacts:
                    time.sleep(0.5)
    if not contacts:
        raise click.ClickException("no contact traced within 60 s; see .local/logs/worker.log")
    console.print(f"[bold]case {case_id}[/] (person {case_person}) traced contacts:")
    for c in contacts:
        e = c["exposures"][0]  # type: ignore[index]
        console.print(f"  F{c['generation']} {c['person_id']} ward {c['ward_code']} at venue {e['venue_id']} "
                      f"overlap {e['overlap_minutes']} min")
    console.print(f"ingest API {settings.ingest_url}/docs · trace API {settings.trace_url}/docs · "
                  "logs in .local/logs · `truyvet status`, `truyvet down`")
