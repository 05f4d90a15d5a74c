"""``truyvet demo``: Bắc Kạn city end to end, as the origin letter describes it.

Loads the city's units and its roster of establishments that must scan, registers most of them as
venues through the ingest API, simulates a couple of days of scans by tens of thousands of
residents (people scanning venue posters with the app, and venues scanning people's CCCD cards),
registers a case, and prints its F1/F2 contacts, the alerts per ward, example posters, the
coverage report and a dashboard URL with a ready token.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from truyvet.auth import Role, create_token
from truyvet.cli.demo_city import STAY, VN, Resident, make_residents, simulate, ward_weights
from truyvet.roster import Establishment, load_roster, read_roster
from truyvet.schema.db import Database
from truyvet.settings import PROJECT_ROOT, CommonSettings, common_settings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.services import Stack
from truyvet.units import load_units

console = Console(soft_wrap=True)  # URLs and tokens must stay on one line to be copied

DATA = PROJECT_ROOT / "deploy" / "data"
BATCH = 5000

def _stage(title: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{title}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    )



# -- venues -----------------------------------------------------------------------------------------
def register_venues(
    http: httpx.Client,
    settings: CommonSettings,
    db: Database,
    auth: dict[str, str],
    roster: list[Establishment],
    share: float,
    rnd: random.Random,
) -> list[dict[str, str]]:
    """Register ``share`` of the roster as venues (once: a rerun reuses what .local/demo remembers)."""
    memo = settings.data_dir / "demo" / f"venues-{settings.clickhouse_database}.json"
    if memo.exists():
        venues: list[dict[str, str]] = json.loads(memo.read_text(encoding="utf-8"))
        known = {
            r[0]
            for r in db.execute(
                "SELECT venue_id FROM venues FINAL WHERE venue_id IN %(ids)s",
                {"ids": tuple(v["venue_id"] for v in venues)},
            )
        }
        if venues and len(known) == len(venues):
            console.print(f"reusing the {len(venues)} venues registered by an earlier demo run")
            return venues
    chosen = [e for e in roster if rnd.random() < share]

    def one(e: Establishment) -> dict[str, str]:
        for attempt in range(5):
            r = http.post(
                f"{settings.ingest_url}/v1/venues",
                headers=auth,
                json={
                    "name": e.name,
                    "category": e.category.value,
                    "ward_code": e.ward_code,
                    "address": e.address,
                    "default_stay_minutes": STAY[e.category.value],
                },
            )
            if r.status_code == 201:
                body = r.json()
                return {
                    "venue_id": body["venue_id"],
                    "qr": body["qr_payload"],
                    "category": e.category.value,
                    "ward_code": e.ward_code,
                    "name": e.name,
                }
            if r.status_code not in (429, 503):
                r.raise_for_status()
            time.sleep(float(r.headers.get("Retry-After", "1")) * (attempt + 1))
        raise click.ClickException(f"could not register {e.name}: {r.status_code} {r.text[:200]}")

    venues = []
    with _stage("registering venues") as progress, ThreadPoolExecutor(8) as pool:
        task = progress.add_task("POST /v1/venues", total=len(chosen))
        for future in as_completed([pool.submit(one, e) for e in chosen]):
            venues.append(future.result())
            progress.advance(task)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(venues, ensure_ascii=False), encoding="utf-8")
    return venues



def post_scans(
    http: httpx.Client, settings: CommonSettings, devices: list[dict[str, str]], scans: list[dict[str, Any]]
) -> Counter[str]:
    """POST /v1/scans/batch in batches of 5,000 from several device tokens; honours 429 Retry-After."""
    totals: Counter[str] = Counter()
    batches = [scans[i : i + BATCH] for i in range(0, len(scans), BATCH)]

    def one(i: int, batch: list[dict[str, Any]]) -> dict[str, Any]:
        for _ in range(30):
            r = http.post(f"{settings.ingest_url}/v1/scans/batch", headers=devices[i % len(devices)], json=batch)
            if r.status_code == 202:
                return dict(r.json())
            if r.status_code not in (429, 503):
                r.raise_for_status()
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 5))
        raise click.ClickException(f"batch {i} refused: {r.status_code} {r.text[:200]}")

    with _stage("posting scans") as progress, ThreadPoolExecutor(3) as pool:
        task = progress.add_task("POST /v1/scans/batch", total=len(scans))
        futures = {pool.submit(one, i, b): len(b) for i, b in enumerate(batches)}
        for future in as_completed(futures):
            body = future.result()
            totals.update(accepted=body["accepted"], duplicates=body["duplicates"], rejected=len(body["rejected"]))
            for bad in body["rejected"][:3]:
                totals[f"rejected: {bad['error'][:60]}"] += 1
            progress.advance(task, futures[future])
    return totals


def count_visits(db: Database, since: datetime) -> int:
    return int(db.execute("SELECT uniqExact(visit_id) FROM visits WHERE t_in >= %(since)s", {"since": since})[0][0])


def wait_for_visits(db: Database, since: datetime, before: int, expected: int, timeout: float = 240) -> int:
    """Poll ClickHouse until the worker has written the visits the scans imply (or stops making progress).

    :param before: visits already there before the scans were posted (an earlier demo run).
    """
    deadline, last, still = time.monotonic() + timeout, -1, 0
    with _stage("stream worker: scans → visits") as progress:
        task = progress.add_task("visits in ClickHouse", total=expected)
        while time.monotonic() < deadline:
            count = count_visits(db, since) - before
            progress.update(task, completed=min(count, expected))
            still = still + 1 if count == last else 0
            if count >= expected or (count >= 0.9 * expected and still >= 20):
                return count
            last = count
            time.sleep(0.5)
    return last


def _poll(fetch: Callable[[], int], *, settle: int = 4, timeout: float = 60, interval: float = 1.0) -> int:
    """Poll ``fetch`` until its value stays the same ``settle`` times in a row (and is not 0)."""
    deadline, last, same = time.monotonic() + timeout, -1, 0
    while time.monotonic() < deadline:
        value = fetch()
        same = same + 1 if value == last and value else 0
        if same >= settle:
            break
        last = value
        time.sleep(interval)
    return last


# -- after the scans: case, alerts, posters, coverage -----------------------------------------------
def trace_case(
    http: httpx.Client,
    settings: CommonSettings,
    auth: dict[str, str],
    person: Resident,
    start: datetime,
    end: datetime,
) -> tuple[str, list[dict[str, Any]]]:
    r = http.post(
        f"{settings.trace_url}/v1/cases",
        headers=auth,
        json={
            "person_id": person.person_id,
            "label": "Ca bệnh demo (F0), TP. Bắc Kạn",
            "infectious_from": start.isoformat(),
            "infectious_to": end.isoformat(),
        },
    )
    r.raise_for_status()
    case_id = str(r.json()["case_id"])
    contacts: list[dict[str, Any]] = []

    def fetch() -> int:
        nonlocal contacts
        resp = http.get(
            f"{settings.trace_url}/v1/cases/{case_id}/contacts",
            params={"depth": 2},
            headers=auth,
            timeout=120,
        )
        resp.raise_for_status()
        contacts = resp.json()["contacts"]
        return len(contacts)

    with console.status("tracing F1 and F2..."):
        _poll(fetch, settle=2, timeout=60)
    return case_id, contacts


def alerts_per_ward(
    http: httpx.Client, settings: CommonSettings, auth: dict[str, str], case_id: str
) -> Counter[str] | None:
    """Alerts of the case per ward, once their number settles; None when the server has no alerts endpoint."""
    found: Counter[str] = Counter()

    def fetch() -> int:
        nonlocal found
        r = http.get(f"{settings.trace_url}/v1/alerts", params={"case_id": case_id, "limit": 10_000}, headers=auth)
        if (
            r.status_code == 404
            and r.headers.get("content-type", "").startswith("application/json")
            and r.json().get("error", {}).get("message", "").startswith("Not Found")
        ):
            raise LookupError
        r.raise_for_status()
        found = Counter(a["ward_code"] for a in r.json()["alerts"])
        return sum(found.values())

    try:
        with console.status("waiting for the alerts to settle..."):
            _poll(fetch, settle=3, timeout=30)
    except (LookupError, httpx.HTTPStatusError):
        return None
    return found


def write_posters(
    http: httpx.Client,
    settings: CommonSettings,
    auth: dict[str, str],
    venues: list[dict[str, str]],
    out: Path,
) -> list[Path]:
    written: list[Path] = []
    for category in ("market_shop", "food_drink", "school"):
        venue = next((v for v in venues if v["category"] == category), None)
        if venue is None:
            continue
        r = http.get(f"{settings.ingest_url}/v1/venues/{venue['venue_id']}/poster.png", headers=auth)
        if r.status_code != 200 or not r.content.startswith(b"\x89PNG"):
            console.print(f"[yellow]posters: GET /v1/venues/{{id}}/poster.png answered {r.status_code}; skipped[/]")
            return written
        path = out / f"poster-{category}-{venue['venue_id']}.png"
        path.write_bytes(r.content)
        written.append(path)
    return written


def coverage_report(
    http: httpx.Client, settings: CommonSettings, auth: dict[str, str], day: str, out: Path
) -> tuple[Path, dict[str, Any]]:
    r = http.get(f"{settings.trace_url}/v1/reports/coverage", params={"date": day, "format": "csv"}, headers=auth)
    r.raise_for_status()
    path = out / f"coverage-{day}.csv"
    path.write_bytes(r.content)  # starts with a BOM: spreadsheets then read the Vietnamese names right
    r = http.get(f"{settings.trace_url}/v1/reports/coverage", params={"date": day}, headers=auth)
    r.raise_for_status()
    return path, dict(r.json())


def _coverage_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"Độ phủ quét mã QR ngày {report['date']} (giờ Việt Nam)")
    for name in ("phường/xã", "phải quét", "đã đăng ký", "có quét", "lượt quét"):
        table.add_column(name, justify="left" if name == "phường/xã" else "right")
    per_ward: dict[str, list[Any]] = {}
    for row in report["rows"]:
        acc = per_ward.setdefault(row["ward_code"], [row["ward_name"] or row["ward_code"], 0, 0, 0, 0])
        for i, k in enumerate(("required", "registered", "active", "scans"), start=1):
            acc[i] += row[k]
    for name, *counts in per_ward.values():
        table.add_row(name, *(str(c) for c in counts))
    t = report["totals"]
    table.add_row("[bold]tổng[/]", *(f"[bold]{t[k]}[/]" for k in ("required", "registered", "active", "scans")))
    return table


def _pick_case(residents: list[Resident]) -> Resident:
    """An app user with a job and the busiest two days: a case worth tracing."""
    app_users = [r for r in residents if r.cccd is None and r.work]
    return max(app_users, key=lambda r: (len(r.places), r.visits, -r.index))


@click.command()
@click.option("--residents", default=20_000, show_default=True, help="Simulated residents.")
@click.option("--days", default=2, show_default=True, help="Days of scans, ending now.")
@click.option("--venue-share", default=0.85, show_default=True, help="Share of the roster that registers.")
@click.option("--card-share", default=0.3, show_default=True, help="Share of residents scanned by CCCD card.")
@click.option("--compliance", default=0.4, show_default=True, help="Chance a resident scans at all on a day.")
@click.option("--no-start", is_flag=True, help="Use the stack already running as configured; start nothing.")
@click.option("--seed", default=1180, show_default=True, help="Random seed (the letter's number).")
def demo(
    residents: int,
    days: int,
    venue_share: float,
    card_share: float,
    compliance: float,
    no_start: bool,
    seed: int,
) -> None:
    """Run the Bắc Kạn demo against the local stack (starting it if needed)."""
    started = time.monotonic()
    settings = common_settings()
    rnd = random.Random(seed)
    out = settings.data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    if not no_start:
        with console.status("starting the stack (Kafka, ClickHouse, ingest, worker, trace API)..."):
            Stack(settings).up()
    db = ensure_database(settings)
    try:
        load_units(db, DATA / "bac_kan_units.csv")
        per_ward = load_roster(db, DATA / "bac_kan_roster.csv")
        roster = read_roster(DATA / "bac_kan_roster.csv")
        wards = {str(c): str(n) for c, n in db.execute("SELECT code, name FROM units FINAL")}
        console.print(
            f"loaded Bắc Kạn's {len(per_ward)} wards and communes and a roster of {len(roster)} "
            "establishments that must scan"
        )
        tokens = {
            role: create_token(db, role=role, name=f"demo-{role.value}")
            for role in (Role.registrar, Role.epidemiologist, Role.viewer)
        }
        devices = [
            {"Authorization": f"Bearer {create_token(db, role=Role.device, name=f'demo-device-{i}')}"} for i in range(4)
        ]
        auth = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        with httpx.Client(timeout=60, limits=limits) as http:
            venues = register_venues(http, settings, db, auth[Role.registrar], roster, venue_share, rnd)
            end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
            start = end - timedelta(days=days)
            people = make_residents(residents, wards, ward_weights(roster), venues, card_share, rnd)
            with console.status(f"simulating {days} days of {residents:,} residents..."):
                scans = simulate(people, venues, start, end, rnd, compliance)
            cards = sum(1 for s in scans if "cccd_qr" in s)
            console.print(
                f"simulated {len(scans):,} scans: {len(scans) - cards:,} by the app on venue posters, "
                f"{cards:,} by venue devices reading CCCD cards"
            )
            since = start - timedelta(hours=13)
            before = count_visits(db, since)
            totals = post_scans(http, settings, devices, scans)
            console.print("ingest answered: " + ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items())))
            expected = sum(1 for s in scans if s["direction"] == "in") - totals["duplicates"]
            written = wait_for_visits(db, since, before, int(expected * 0.97))
            console.print(f"the stream worker wrote {written:,} visits")

            case_person = _pick_case(people)
            case_id, contacts = trace_case(http, settings, auth[Role.epidemiologist], case_person, start, end)
            generations = Counter(c["generation"] for c in contacts)
            console.print(
                f"[bold]case {case_id}[/] (person {case_person.person_id}, {case_person.visits} visits): "
                f"[bold]{generations[1]} F1[/] and [bold]{generations[2]} F2[/] contacts"
            )
            alerts = alerts_per_ward(http, settings, auth[Role.epidemiologist], case_id)
            if alerts is None:
                console.print("[yellow]alerts: this server has no GET /v1/alerts yet[/]")
            else:
                console.print(
                    "alerts per ward: "
                    + (", ".join(f"{wards.get(w, w or '?')} {n}" for w, n in alerts.most_common()) or "none")
                )
            posters = write_posters(http, settings, auth[Role.registrar], venues, out)
            today = (datetime.now(UTC) + VN).date().isoformat()
            report_path, report = coverage_report(http, settings, auth[Role.viewer], today, out)
            console.print(_coverage_table(report))
            busiest = alerts.most_common(1)[0][0] if alerts else case_person.ward
            health = create_token(db, role=Role.health_center, ward_code=busiest, name=f"demo-tram-y-te-{busiest}")
    finally:
        db.close()

    console.print(f"[bold]case {case_id}[/] (person {case_person.person_id}) traced contacts:")
    for c in contacts[:8]:
        e = c["exposures"][0]
        console.print(
            f"  F{c['generation']} {c['person_id']} ward {c['ward_code']} at venue {e['venue_id']} "
            f"overlap {e['overlap_minutes']} min"
        )
    if len(contacts) > 8:
        console.print(f"  ... and {len(contacts) - 8} more (all of them on the dashboard)")
    for path in posters:
        console.print(f"poster: {path}")
    console.print(f"coverage report: {report_path}")
    base = f"{settings.trace_url}/dashboard/"
    console.print(f"\n[bold green]Dashboard[/] (Trung tâm Y tế, case page): {base}#token={tokens[Role.epidemiologist]}")
    console.print(f"  this case: {base}case?case={case_id}#token={tokens[Role.epidemiologist]}")
    console.print(f"  ward health center ({wards.get(busiest, busiest)}): {base}#token={health}")
    console.print(f"  city office, coverage: {base}#token={tokens[Role.viewer]}")
    console.print(f"  compliance by establishment: {base}compliance?ward={busiest}#token={tokens[Role.viewer]}")
    console.print(f"  venue pages: {settings.ingest_url}/scanner/ (device token) · {settings.ingest_url}/registrar/")
    console.print(
        f"demo finished in {time.monotonic() - started:.0f} s · ingest API {settings.ingest_url}/docs · "
        f"trace API {settings.trace_url}/docs · logs in .local/logs · `truyvet status`"
    )
