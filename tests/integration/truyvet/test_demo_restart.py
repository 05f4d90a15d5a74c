"""The whole stack restarted after the demo works (issue 16): `truyvet demo`, `truyvet down`, `truyvet up`, then
a new case from new scans gets its contacts and its alerts, also the alert of a scan arriving late.

Runs on a stack of its own (own ports and data dir), like test_stack_lifecycle. Before the fix, the worker
never became healthy again after a restart that followed a case: the exposure-windows and alerted changelogs
could not be recovered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.truyvet.own_stack import own_stack_env
from truyvet.stack.processes import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = "01834"


def _scan(venue: str, person: str, at: datetime, direction: str = "in") -> dict[str, str]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": at.isoformat(), "direction": direction,
            "venue_id": venue, "person_id": person}


def test_demo_then_down_then_up_then_a_new_case_is_traced_and_alerted(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("ingest", "trace", "metrics")}
    env = own_stack_env(tmp_path / "stack", "truyvet-demo-restart", **ports)
    cli = [sys.executable, "-m", "truyvet.cli"]

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"truyvet {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def token(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {run('token', 'create', '--role', role).stdout.strip().splitlines()[-1]}"}

    try:
        demo = run("demo", "--residents", "2000", "--days", "1")
        assert "case " in demo.stdout and " F1" in demo.stdout, demo.stdout[-3000:]
        run("down")
        started = time.monotonic()
        run("up")
        status = json.loads(subprocess.run([*cli, "status", "--json"], env=env, capture_output=True, text=True,
                                           timeout=60, check=False).stdout)
        print(f"\nstack up again after the demo in {time.monotonic() - started:.1f} s")
        assert status["profile"] == "single"
        health = {c["name"]: c["health"] for c in status["components"]}
        assert health["worker"] == "up", status
        assert {c["kind"] for c in status["components"]} >= {"kafka", "clickhouse", "ingest", "trace", "worker"}

        ingest, trace = f"http://127.0.0.1:{ports['ingest']}", f"http://127.0.0.1:{ports['trace']}"
        registrar, device, epi = token("registrar"), token("device"), token("epidemiologist")
        with httpx.Client(timeout=30) as http:
            r = http.post(f"{ingest}/v1/venues", headers=registrar,
                          json={"name": "Quán sau khởi động lại", "category": "food_drink", "ward_code": WARD})
            assert r.status_code == 201, r.text
            venue = r.json()["venue_id"]
            now = datetime.now(UTC).replace(microsecond=0)
            t0 = now - timedelta(hours=3)
            case, contact, late = (f"p{uuid.uuid4().hex[:12]}" for _ in range(3))
            r = http.post(f"{ingest}/v1/scans/batch", headers=device, json=[
                _scan(venue, case, t0), _scan(venue, case, t0 + timedelta(minutes=40), "out"),
                _scan(venue, contact, t0 + timedelta(minutes=10))])
            assert r.status_code == 202 and r.json()["accepted"] == 3, r.text

            def contacts_of(case_id: str) -> set[str]:
                got = http.get(f"{trace}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 2})
                assert got.status_code == 200, got.text
                return {c["person_id"] for c in got.json()["contacts"]}

            def visits_written() -> bool:
                r = http.post(f"{trace}/v1/cases", headers=epi, json={
                    "person_id": contact, "infectious_from": (now - timedelta(days=1)).isoformat(),
                    "infectious_to": now.isoformat(), "label": "probe"})
                return r.status_code == 201 and case in contacts_of(r.json()["case_id"])

            wait_until(visits_written, timeout=120, what="the new scans turned into visits after the restart")
            r = http.post(f"{trace}/v1/cases", headers=epi, json={
                "person_id": case, "infectious_from": (now - timedelta(days=1)).isoformat(),
                "infectious_to": now.isoformat()})
            assert r.status_code == 201, r.text
            case_id = r.json()["case_id"]
            assert contact in contacts_of(case_id)

            def alerted() -> set[str]:
                got = http.get(f"{trace}/v1/alerts", headers=epi, params={"case_id": case_id})
                assert got.status_code == 200, got.text
                return {a["person_id"] for a in got.json()["alerts"]}

            wait_until(lambda: contact in alerted(), timeout=60, what="the contact's alert")
            # A scan arriving after the registration: the worker's matcher alerts it by itself.
            r = http.post(f"{ingest}/v1/scans", headers=device, json=_scan(venue, late, t0 + timedelta(minutes=20)))
            assert r.status_code == 202, r.text
            wait_until(lambda: late in alerted(), timeout=60, what="the late scan's alert")
    finally:
        down = subprocess.run([*cli, "down"], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert down.returncode == 0, down.stdout + down.stderr
