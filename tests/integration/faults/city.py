"""The city of the fault test (tests/integration/faults/test_city_faults.py): its scans, cases, devices,
reference explainers and the readers of what the stack stored."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient, KafkaConsumer

from tests.integration.streams.harness import stay_function
from tests.integration.topics import group_lags
from tests.unit.streams import reference as visits_ref
from tests.unit.streams.scenarios import VenueSpec, generate, make_venues, scan_json, shuffled, with_resends
from tests.unit.trace_api import reference as trace_ref
from truyvet.kafka_clients import client_kwargs
from truyvet.schema.db import Database
from truyvet.settings import PROJECT_ROOT, CommonSettings
from truyvet.stack.processes import alive, free_port, wait_until

SEED = int(os.environ.get("FAULTS_CITY_SEED", "16"))
# For diagnosis only: FAULTS_CITY_FAULTS=0 runs the same city with no kill at all.
FAULTS = os.environ.get("FAULTS_CITY_FAULTS", "1") != "0"
PERSONS = 850  # about 13 scans each: ~11,000 scans with the resends
VENUES = 300
DEVICES = 4
BATCH = 50
PACE_SECONDS = 0.5  # between one device's batches: ~400 scans/s in all, so the faults land mid-intake
RETRY_SECONDS = 0.25  # a device's pause before it resends a batch
CLICKHOUSE_OUTAGE_SECONDS = 5.0  # at least; longer than ingest's token cache and the dispatcher's webhook cache
WINDOW = 60 * 60  # TRACE_WINDOW_MINUTES (default W)
HOUR = visits_ref.HOUR
APP_ID = "truyvet-city-faults"
UNITS = PROJECT_ROOT / "deploy" / "data" / "bac_kan_units.csv"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


# -- the city ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseSpec:
    person_id: str
    start: int
    end: int


@dataclass
class City:
    venues: list[VenueSpec]  # venue ids as registered by the ingest API
    arrivals: list[visits_ref.RefScan]  # every scan, shuffled, with resends
    live: list[CaseSpec]  # registered before the intake; their people's scans go first
    later: CaseSpec  # registered once everything caught up


def generate_city(rng: random.Random, start: int) -> tuple[list[VenueSpec], list[visits_ref.RefScan]]:
    venues = make_venues(rng, VENUES)
    scans = generate(rng, persons=PERSONS, venues=venues, start=start, visits_per_person=8)
    return venues, with_resends(rng, shuffled(rng, scans), 0.02)


def trace_visits(visits: dict[str, visits_ref.RefVisit]) -> list[trace_ref.RefVisit]:
    return [trace_ref.RefVisit(v.visit_id, v.person_id, v.venue_id, v.t_in, v.t_out) for v in visits.values()]


def possible_visits(scans: Sequence[visits_ref.RefScan], stay_for: Callable[[str], int],
                    max_stay: int = 12 * HOUR) -> dict[str, list[trace_ref.RefVisit]]:
    """person -> every visit that some subset of their scans makes under the contract's rules: each ``in``
    to its default stay, to any of their ``out``s there within the maximum stay, or cut by any later ``in``
    elsewhere; each ``out`` as an orphan. A superset of every state the visits pass through while the
    scans arrive, in any order (an alert raised on such a state is late data, not an invented contact)."""
    by_person: dict[str, list[visits_ref.RefScan]] = {}
    for scan in {s.scan_id: s for s in scans}.values():
        by_person.setdefault(scan.person_id, []).append(scan)
    out: dict[str, list[trace_ref.RefVisit]] = {}
    for person, own in by_person.items():
        spans = set()
        for a in own:
            if a.direction == "out":
                spans.add((a.venue_id, a.t - stay_for(a.venue_id), a.t))
                continue
            ends = {a.t + min(stay_for(a.venue_id), max_stay)}
            ends |= {o.t for o in own if o.direction == "out" and o.venue_id == a.venue_id
                     and a.t <= o.t <= a.t + max_stay}
            ends |= {b.t for b in own if b.direction == "in" and b.venue_id != a.venue_id and b.t > a.t}
            spans |= {(a.venue_id, a.t, e) for e in ends if e >= a.t}
        out[person] = [trace_ref.RefVisit("", person, v, t_in, t_out) for v, t_in, t_out in sorted(spans)]
    return out


def explainer(spec: CaseSpec, possible: dict[str, list[trace_ref.RefVisit]]) -> Callable[[str, int], bool]:
    """``explained(person, generation)``: could some state of the late data have made this person a contact
    of the case (generation 2: through someone some state made a generation-1 contact)?"""
    case_visits = trace_ref.infectious_visits(possible.get(spec.person_id, []), spec.person_id, spec.start, spec.end)

    def exposures(sources: Sequence[trace_ref.RefVisit], who: str) -> list[trace_ref.RefVisit]:
        return [b for b in possible.get(who, ()) if any(trace_ref.qualifies(a, b, WINDOW, 0) for a in sources)]

    second: dict[str, list[trace_ref.RefVisit]] = {}  # venue -> possible F1s' possibly infectious visits
    for first in possible:
        met = exposures(case_visits, first) if first != spec.person_id else []
        if met:
            for v in trace_ref.infectious_visits(possible[first], first, min(v.t_in for v in met), spec.end):
                second.setdefault(v.venue_id, []).append(v)

    def explained(person: str, generation: int) -> bool:
        if exposures(case_visits, person):
            return True
        return generation == 2 and any(
            trace_ref.qualifies(a, b, WINDOW, 0)
            for b in possible.get(person, ()) for a in second.get(b.venue_id, ()) if a.person_id != person)

    return explained


def choose_cases(rng: random.Random, arrivals: Sequence[visits_ref.RefScan], venues: Sequence[VenueSpec],
                 start: int) -> tuple[list[CaseSpec], CaseSpec]:
    """Three live cases and one for later, each with at least ten generation-1 contacts in the end."""
    visits = trace_visits(visits_ref.reference_visits(arrivals, stay_for=stay_function(venues)))
    persons = sorted({s.person_id for s in arrivals})
    rng.shuffle(persons)
    chosen: list[CaseSpec] = []
    for person in persons:
        k = len(chosen)
        spec = CaseSpec(person, start + (2 + k) * HOUR, start + (14 + k) * HOUR)
        found = trace_ref.expected_contacts(visits, person, spec.start, spec.end, window=WINDOW, min_overlap=0,
                                            depth=1)
        if len(found) >= 10:
            chosen.append(spec)
        if len(chosen) == 4:
            return chosen[:3], chosen[3]
    raise AssertionError("the generated city has too few people with contacts")


# -- the stack ------------------------------------------------------------------------------------------
def own_environment(data: Path) -> dict[str, str]:
    return {
        "TRUYVET_DATA_DIR": str(data),
        "TRUYVET_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "TRUYVET_KAFKA_CONTROLLER_PORT": str(free_port()),
        "TRUYVET_CLICKHOUSE_HOST": "127.0.0.1",
        "TRUYVET_CLICKHOUSE_PORT": str(free_port()),
        "TRUYVET_CLICKHOUSE_HTTP_PORT": str(free_port()),
        "TRUYVET_CLICKHOUSE_DATABASE": "truyvet_city",
        "TRUYVET_INGEST_PORT": str(free_port()),
        "TRUYVET_TRACE_PORT": str(free_port()),
        "TRUYVET_WORKER_METRICS_PORT": str(free_port()),
        "ALERTS_DISPATCHER_PORT": str(free_port()),
        "TRUYVET_TOPIC_PREFIX": "city-",
        "STREAMS_APP_ID": APP_ID,
        "INGEST_QR_KEYS_DIR": str(data / "keys" / "qr"),
        # A device learns of a Kafka outage after 3 s (503), not after the default 10 s.
        "INGEST_PRODUCE_TIMEOUT_SECONDS": "3",
        "INGEST_RETRY_AFTER_SECONDS": "1",
        "ALERTS_BACKOFF_CAP_SECONDS": "4",
        "PYTHONPATH": str(PROJECT_ROOT),
    }


def kill_9(pid: int, what: str) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout=15, what=f"{what} (pid {pid}) gone after SIGKILL")


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback test URL
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def worker_ok(url: str) -> bool:
    status, body = get_json(url)
    return status == 200 and body.get("status") == "ok"


class Lag:
    """Records not yet committed by a consumer group, per (group, topic); kafka-python clients made lazily."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.admin: KafkaAdminClient | None = None
        self.consumer: KafkaConsumer | None = None

    def __call__(self, group: str, topic: str) -> int:
        if self.admin is None:
            self.admin = KafkaAdminClient(**client_kwargs(self.settings), request_timeout_ms=10000)
            self.consumer = KafkaConsumer(**client_kwargs(self.settings))
        assert self.consumer is not None
        return sum(group_lags(self.admin, self.consumer, group, topic).values())

    def close(self) -> None:
        for client in (self.admin, self.consumer):
            if client is not None:
                client.close()


# -- devices --------------------------------------------------------------------------------------------
@dataclass
class Intake:
    """What every device saw: acknowledged scans, 503s, connection failures, anything else."""

    total: int
    acked: list[visits_ref.RefScan] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)  # monotonic time of each 202
    unavailable: list[float] = field(default_factory=list)  # monotonic time of each 503
    transport: list[tuple[float, str]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # any other answer: reported as a failure
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def first_202_after(self, t: float) -> float | None:
        with self.lock:
            later = [a for a in self.accepted_at if a > t]
        return min(later) if later else None

    def failures(self) -> int:
        """Requests not answered 202 (503, no connection, anything else)."""
        with self.lock:
            return len(self.unavailable) + len(self.transport) + len(self.other)


def post_until_acked(http: httpx.Client, url: str, headers: dict[str, str], batch: Sequence[visits_ref.RefScan],
                     intake: Intake) -> None:
    """One device's batch, resent with the same scan ids until ingest answers 202 (as a device would)."""
    body = b"[" + b",".join(scan_json(s) for s in batch) + b"]"
    send_headers = {**headers, "Content-Type": "application/json"}
    while not intake.stop.is_set():
        try:
            r = http.post(f"{url}/v1/scans/batch", headers=send_headers, content=body)
        except httpx.TransportError as exc:
            with intake.lock:
                intake.transport.append((time.monotonic(), type(exc).__name__))
            time.sleep(RETRY_SECONDS)
            continue
        if r.status_code == 202:
            answer = r.json()
            bad = {int(item["index"]) for item in answer["rejected"]}
            with intake.lock:
                intake.accepted_at.append(time.monotonic())
                intake.acked.extend(s for i, s in enumerate(batch) if i not in bad)
                intake.rejected.extend(f"{item}" for item in answer["rejected"])
            return
        if r.status_code == 503:
            with intake.lock:
                intake.unavailable.append(time.monotonic())
            time.sleep(RETRY_SECONDS)
            continue
        if r.status_code == 429:
            time.sleep(min(1.0, float(r.headers.get("Retry-After", "1"))))
            continue
        with intake.lock:
            intake.other.append(f"{r.status_code} {r.text[:300]}")
        if r.status_code < 500:
            return  # a 4xx will not change by resending; the batch stays unacknowledged (and reported)
        time.sleep(RETRY_SECONDS)  # reported; resent so the rest of the scenario can still be checked


def run_device(url: str, headers: dict[str, str], batches: list[list[visits_ref.RefScan]], intake: Intake) -> None:
    with httpx.Client(timeout=60) as http:  # longer than ingest's Kafka deadline (3 s here)
        for batch in batches:
            if intake.stop.is_set():
                return
            post_until_acked(http, url, headers, batch, intake)
            time.sleep(PACE_SECONDS)


# -- checks ---------------------------------------------------------------------------------------------
def stored_visits(db: Database, table: str) -> dict[str, visits_ref.RefVisit]:
    """The latest version of every visit (FINAL), tombstones dropped after it."""
    rows = db.execute(f"SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM {table} FINAL")
    out: dict[str, visits_ref.RefVisit] = {}
    for v, p, ven, a, b, deleted in rows:
        if not deleted:
            assert str(v) not in out, f"visit {v} twice after FINAL"
            out[str(v)] = visits_ref.RefVisit(str(v), str(p), str(ven), int(a.timestamp()), int(b.timestamp()))
    return out


def visits_of(db: Database, persons: Sequence[str]) -> dict[str, visits_ref.RefVisit]:
    rows = db.execute("SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits FINAL "
                      "WHERE person_id IN %(p)s", {"p": tuple(persons)})
    return {str(v): visits_ref.RefVisit(str(v), str(p), str(ven), int(a.timestamp()), int(b.timestamp()))
            for v, p, ven, a, b, deleted in rows if not deleted}


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def contact_differences(case_id: str, contacts: list[dict[str, Any]],
                        expected: dict[str, trace_ref.RefContact]) -> list[str]:
    """Where the API's contacts differ from the reference: persons, generation, via, exposures."""
    got = {c["person_id"]: c for c in contacts}
    problems = []
    if len(got) != len(contacts):
        problems.append(f"{case_id}: a person is listed twice")
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        problems.append(f"{case_id}: contacts missing {len(missing)} {missing[:10]}, extra {len(extra)} {extra[:10]}")
    for person in sorted(set(got) & set(expected)):
        c, want = got[person], expected[person]
        if c["generation"] != want.generation:
            problems.append(f"{case_id}: {person} generation {c['generation']}, reference {want.generation}")
            continue
        via = c["via_person_id"]
        if via not in want.through:
            problems.append(f"{case_id}: {person} via {via}, reference via one of {sorted(map(str, want.through))}")
            continue
        exposures = sorted((e["venue_id"], epoch(e["case_visit"]["t_in"]), epoch(e["case_visit"]["t_out"]),
                            epoch(e["contact_visit"]["t_in"]), epoch(e["contact_visit"]["t_out"]),
                            e["overlap_minutes"]) for e in c["exposures"])
        if exposures != want.through[via]:
            problems.append(f"{case_id}: {person} exposures {exposures} != reference {want.through[via]}")
    return problems


def save_artifacts(data: Path, name: str, details: dict[str, Any]) -> Path:
    out = ARTIFACTS / name
    out.mkdir(parents=True, exist_ok=True)
    if (data / "logs").exists():
        shutil.copytree(data / "logs", out / "logs", dirs_exist_ok=True)
    (out / "details.json").write_text(json.dumps(details, indent=1, default=str))
    return out


# -- the test -------------------------------------------------------------------------------------------
