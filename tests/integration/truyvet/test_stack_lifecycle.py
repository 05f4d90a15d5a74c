"""`truyvet up | status | down` on a stack of its own (own ports and data dir): versions shown, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.truyvet.own_stack import own_stack_env
from truyvet.stack.processes import alive

pytestmark = pytest.mark.slow


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(int(cmdline.parent.name))
    return [pid for pid in found if pid != os.getpid() and alive(pid)]


def test_up_status_down_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    env = own_stack_env(data, "truyvet-lifecycle")
    cli = [sys.executable, "-m", "truyvet.cli"]
    try:
        up = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=60, check=True)
        lines = {line.split("│")[1].strip(): line for line in status.stdout.splitlines() if line.count("│") > 4}
        assert "Apache Kafka 4." in lines["kafka"] and "up" in lines["kafka"], status.stdout
        assert "ClickHouse " in lines["clickhouse"] and "up" in lines["clickhouse"], status.stdout
        for component in ("ingest", "trace", "worker"):
            assert " up " in lines[component], status.stdout
        assert _processes_mentioning(str(data)), "the stack's processes should mention its data dir"
    finally:
        down = subprocess.run([*cli, "down"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "kafka" in down.stdout and "clickhouse" in down.stdout
    assert _processes_mentioning(str(data)) == []
    left = [p.name for p in (data / "run").glob("*.pid")]
    assert left == []
