"""The demo's city: who lives in Bắc Kạn, where they work and run errands, and the scans that makes.

Residents are drawn per ward in proportion to its establishments; about half work at a workplace
venue, everyone runs the day's errands (categories, probabilities and hours as in the origin
letter's list), and some carry a chip ID card (CCCD) that venues scan instead of the person scanning
the poster. ``simulate`` returns the scans of every day, in time order, as the ingest API takes them.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from truyvet.roster import Establishment

VN = timedelta(hours=7)  # Vietnam time, no daylight saving
# How long people stay, minutes (also the venues' default stay when nobody scans out).
STAY = {
    "office": 480,
    "factory": 480,
    "school": 420,
    "health_facility": 60,
    "food_drink": 40,
    "bar": 120,
    "karaoke": 150,
    "massage_beauty": 60,
    "gym": 75,
    "meeting": 120,
    "bus_station": 30,
    "public_transport": 45,
    "mall_supermarket": 60,
    "market_shop": 30,
    "wedding": 180,
    "funeral": 90,
    "tourist_site": 120,
    "entertainment": 90,
    "spiritual_site": 45,
}
WORKPLACES = (
    "office",
    "factory",
    "school",
    "market_shop",
    "health_facility",
    "food_drink",
    "mall_supermarket",
)
# (category, probability per day, local hours when people arrive)
ERRANDS = [
    ("food_drink", 0.35, (6, 8)),
    ("market_shop", 0.35, (6, 11)),
    ("food_drink", 0.3, (11, 13)),
    ("market_shop", 0.2, (16, 19)),
    ("food_drink", 0.2, (18, 20)),
    ("mall_supermarket", 0.08, (9, 21)),
    ("massage_beauty", 0.05, (9, 20)),
    ("gym", 0.05, (17, 19)),
    ("karaoke", 0.04, (19, 22)),
    ("bar", 0.03, (20, 23)),
    ("health_facility", 0.03, (7, 11)),
    ("spiritual_site", 0.02, (6, 9)),
    ("public_transport", 0.03, (6, 17)),
    ("bus_station", 0.02, (5, 16)),
    ("entertainment", 0.03, (15, 21)),
    ("meeting", 0.02, (8, 14)),
    ("wedding", 0.01, (10, 12)),
    ("funeral", 0.005, (8, 15)),
    ("tourist_site", 0.01, (8, 15)),
]
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Hà", "Nông", "Triệu", "Lục", "Ma", "Đặng", "Bế", "Lường"]
GIVEN = [
    "Văn An",
    "Thị Bình",
    "Đức Cường",
    "Thị Dung",
    "Minh Đức",
    "Thị Hoa",
    "Văn Khánh",
    "Thị Lan",
    "Quang Minh",
    "Thị Ngọc",
    "Văn Phúc",
    "Thị Quỳnh",
    "Hữu Sơn",
    "Thị Thu",
    "Văn Tùng",
    "Thị Xuân",
]


@dataclass
class Resident:
    index: int
    person_id: str
    ward: str
    cccd: str | None  # the card's QR text for people the venues scan; None for app users
    work: dict[str, str] | None = None
    visits: int = 0
    places: set[str] = field(default_factory=set)



def ward_weights(establishments: list[Establishment]) -> dict[str, int]:
    return dict(Counter(e.ward_code for e in establishments))



# -- residents and their scans ----------------------------------------------------------------------
def _cccd_text(rnd: random.Random, ward_name: str) -> str:
    """A card's QR text: 12-digit ID (province code 006: Bắc Kạn), empty old ID, name, birth, sex, address."""
    number = "006" + "".join(rnd.choice("0123456789") for _ in range(9))
    born = f"{rnd.randint(1, 28):02d}{rnd.randint(1, 12):02d}{rnd.randint(1950, 2008)}"
    sex = rnd.choice(["Nam", "Nữ"])
    name = f"{rnd.choice(FAMILY)} {rnd.choice(GIVEN)}"
    address = f"Tổ {rnd.randint(1, 25)}, {ward_name}, Bắc Kạn"
    issued = f"{rnd.randint(1, 28):02d}0{rnd.randint(1, 9)}2021"
    return f"{number}||{name}|{born}|{sex}|{address}|{issued}"


def make_residents(
    count: int,
    wards: dict[str, str],
    weights: dict[str, int],
    venues: list[dict[str, str]],
    card_share: float,
    rnd: random.Random,
) -> list[Resident]:
    codes = list(weights)
    homes = rnd.choices(codes, weights=[weights[c] for c in codes], k=count)
    jobs = [v for v in venues if v["category"] in WORKPLACES]
    residents = []
    for i, home in enumerate(homes):
        cccd = _cccd_text(rnd, wards.get(home, home)) if rnd.random() < card_share else None
        person = Resident(i, f"bk{uuid.UUID(int=rnd.getrandbits(128)).hex[:14]}", home, cccd)
        if rnd.random() < 0.55 and jobs:
            person.work = rnd.choice(jobs)
        residents.append(person)
    return residents


def simulate(
    residents: list[Resident],
    venues: list[dict[str, str]],
    start: datetime,
    end: datetime,
    rnd: random.Random,
    compliance: float = 0.4,
) -> list[dict[str, Any]]:
    """Scans of each resident's days in ``[start, end]``: work, meals, markets, evenings; some scan out."""
    by_cat: dict[str, list[dict[str, str]]] = {}
    for v in venues:
        by_cat.setdefault(v["category"], []).append(v)
    popularity = {v["venue_id"]: rnd.paretovariate(1.5) for v in venues}  # a few busy places, many quiet ones
    cum: dict[str, list[float]] = {}
    near: dict[tuple[str, str], list[dict[str, str]]] = {}
    for c, vs in by_cat.items():
        total, cum[c] = 0.0, []
        for v in vs:
            total += popularity[v["venue_id"]]
            cum[c].append(total)
            near.setdefault((c, v["ward_code"]), []).append(v)
    scans: list[dict[str, Any]] = []
    first_day = (start + VN).date()
    days = [(first_day + timedelta(days=d)) for d in range((end + VN).date().toordinal() - first_day.toordinal() + 1)]

    def scan(person: Resident, venue: dict[str, str], at: datetime, direction: str) -> None:
        if not start <= at <= end:
            return
        item: dict[str, Any] = {
            "scan_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "scanned_at": at.isoformat(),
            "direction": direction,
        }
        if person.cccd:  # the venue's device scans the card
            item.update(venue_id=venue["venue_id"], cccd_qr=person.cccd)
        else:  # the person's app scans the venue's poster
            item.update(venue_qr=venue["qr"], person_id=person.person_id)
        scans.append(item)
        if direction == "in":
            person.visits += 1
            person.places.add(venue["category"])
        if rnd.random() < 0.01:  # a device re-sends: same scan_id, dropped as a duplicate
            scans.append(dict(item))

    for day in days:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) - VN
        for person in residents:
            if rnd.random() >= compliance:  # compliance decays (docs/domain.md): many days go unscanned
                continue
            plans: list[tuple[dict[str, str], datetime]] = []
            if person.work and day.weekday() < 6:
                plans.append((person.work, midnight + timedelta(hours=7, minutes=rnd.randint(0, 75))))
            for cat, p, (h0, h1) in ERRANDS:
                if cat in by_cat and rnd.random() < p:
                    local = near.get((cat, person.ward))
                    venue = (
                        rnd.choice(local)
                        if local and rnd.random() < 0.4
                        else rnd.choices(by_cat[cat], cum_weights=cum[cat])[0]
                    )
                    plans.append((venue, midnight + timedelta(hours=h0, seconds=rnd.randint(0, (h1 - h0) * 3600))))
            for venue, at in sorted(plans, key=lambda p: p[1]):
                scan(person, venue, at, "in")
                if rnd.random() < 0.45:
                    stay = STAY[venue["category"]]
                    scan(person, venue, at + timedelta(minutes=rnd.randint(stay // 2, stay + stay // 2)), "out")
    scans.sort(key=lambda s: s["scanned_at"])
    return scans
