"""`truyvet up --ingest-workers 2`: two ingest processes share the ingest port, each with its own pid and
status row; scans through either reach ClickHouse; one killed is shown down and `truyvet up` restarts
only it.

The stack is the test's own (own data dir, service ports, topics and consumer group) on the session's
Kafka and ClickHouse (its `truyvet up` finds them answering and uses them; its `down` leaves them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from truyvet.auth import Role
from truyvet.settings import CommonSettings
from truyvet.stack.processes import alive, free_port, wait_until

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "truyvet.cli"]


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=240, check=False)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _status(env: dict[str, str]) -> dict[str, dict[str, object]]:
    document = json.loads(_cli(env, "status", "--json", check=False).stdout)
    return {c["name"]: c for c in document["components"]}


def _scans(venue: str, persons: list[str]) -> list[dict[str, str]]:
    at = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0).isoformat()
    return [{"scan_id": str(uuid.uuid4()), "scanned_at": at, "direction": "in", "venue_id": venue,
             "person_id": p} for p in persons]


def _accepted(metrics: str) -> float:
    found = re.search(r'^truyvet_ingest_scans_total\{outcome="accepted"\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_ingest_pool_shares_the_port_and_restarts_one(infra: CommonSettings, db, token, tmp_path: Path) -> None:
    ingest_port = free_port()
    env = {**os.environ, "TRUYVET_DATA_DIR": str(tmp_path), "TRUYVET_TOPIC_PREFIX": f"{infra.topic_prefix}pool-",
           "TRUYVET_INGEST_PORT": str(ingest_port), "TRUYVET_TRACE_PORT": str(free_port()),
           "TRUYVET_WORKER_METRICS_PORT": str(free_port()), "ALERTS_DISPATCHER_PORT": str(free_port()),
           "STREAMS_APP_ID": f"truyvet-pool-{uuid.uuid4().hex[:6]}", "COLUMNS": "200"}
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "libs").symlink_to(infra.data_dir / "kafka" / "libs")
    (tmp_path / "secrets").symlink_to(infra.data_dir / "secrets")  # the session's accounts and keys
    registrar, device = token(Role.registrar), token(Role.device)
    url = f"http://127.0.0.1:{ingest_port}"
    try:
        _cli(env, "up", "--ingest-workers", "2")
        status = _status(env)
        pool = {name: c for name, c in status.items() if c["kind"] == "ingest"}
        assert sorted(pool) == ["ingest", "ingest-1"], status
        assert all(c["health"] == "up" and c["address"] == url for c in pool.values()), pool
        pids = {name: int(c["pid"]) for name, c in pool.items()}  # type: ignore[call-overload]
        assert len(set(pids.values())) == 2 and all(alive(p) for p in pids.values())
        own = {name: json.loads((tmp_path / "run" / "ingest-own" / str(pid)).read_text())["own"]
               for name, pid in pids.items()}

        with httpx.Client(timeout=30) as http:
            r = http.post(f"{url}/v1/venues", headers=registrar,
                          json={"name": "Quán pool", "category": "market_shop", "ward_code": "01840"})
            assert r.status_code == 201, r.text
            venue = r.json()["venue_id"]
            persons: list[str] = []
            # One batch through each process's own port: both processes take scans in.
            for name in pool:
                batch = [f"pool{uuid.uuid4().hex[:10]}" for _ in range(5)]
                r = http.post(f"{own[name]}/v1/scans/batch", headers=device, json=_scans(venue, batch))
                assert r.status_code == 202 and r.json()["accepted"] == 5, r.text
                persons += batch
            before = {name: _accepted(http.get(f"{own[name]}/metrics").text) for name in pool}
        # Through the shared port, each request on a new connection: the kernel spreads them over both.
        for _ in range(24):
            batch = [f"pool{uuid.uuid4().hex[:10]}" for _ in range(2)]
            r = httpx.post(f"{url}/v1/scans/batch", headers=device, json=_scans(venue, batch), timeout=30)
            assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
            persons += batch
        after = {name: _accepted(httpx.get(f"{own[name]}/metrics").text) for name in pool}
        assert all(after[n] > before[n] for n in pool), (before, after)
        assert sum(after.values()) - sum(before.values()) == 48

        query = "SELECT uniqExact(person_id) FROM visits WHERE person_id IN %(p)s"
        wait_until(lambda: db.execute(query, {"p": tuple(persons)})[0][0] == len(persons), timeout=90,
                   what="every scan's visit in ClickHouse")

        os.kill(pids["ingest-1"], signal.SIGKILL)
        wait_until(lambda: not alive(pids["ingest-1"]), timeout=10, what="ingest-1 gone")
        status = _status(env)
        assert status["ingest-1"]["health"] == "down" and status["ingest-1"]["pid"] is None, status
        assert status["ingest"]["health"] == "up" and status["ingest"]["pid"] == pids["ingest"]
        others = {n: c["pid"] for n, c in status.items() if c["kind"] in ("trace", "worker", "dispatcher")}
        r = httpx.post(f"{url}/v1/scans/batch", headers=device, json=_scans(venue, ["poolsurvivor"]), timeout=30)
        assert r.status_code == 202, r.text  # the shared port still answers, from the survivor

        _cli(env, "up")  # no option: the pool keeps its size; only the killed process starts again
        status = _status(env)
        assert status["ingest-1"]["health"] == "up" and status["ingest-1"]["pid"] not in (None, pids["ingest-1"])
        assert status["ingest"]["pid"] == pids["ingest"]
        assert {n: c["pid"] for n, c in status.items() if n in others} == others
    finally:
        down = _cli(env, "down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "kafka" not in down.stdout and "clickhouse" not in down.stdout  # the session's, left running
    assert list((tmp_path / "run").glob("*.pid")) == []


def test_ingest_process_refuses_a_port_served_outside_its_pool(tmp_path: Path) -> None:
    """SO_REUSEPORT would let a process of another stack share the port and split its traffic: an ingest
    process whose port already answers, with no process of its own pool there, does not start."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # a bind beside it would succeed
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        port = other.getsockname()[1]
        env = {**os.environ, "TRUYVET_DATA_DIR": str(tmp_path), "TRUYVET_INGEST_PORT": str(port)}
        proc = subprocess.Popen([sys.executable, "-m", "ingest.serve"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode != 0 and "outside this pool" in err, err
