"""``make test``: the whole suite as two pytest processes at once, sharing one Kafka and one ClickHouse.

A serial run keeps the machine's two cores only about a third busy (17.6 CPU minutes in 24.7 minutes:
services starting, restarts, fault windows and catch-ups are mostly waiting), so the suite runs as two
groups side by side:

- ``cluster``: what needs the cluster profile (``tests/integration/cluster`` and the tests compared
  over both profiles), then, in a second session once the cluster is stopped, the long single-node
  fault scenarios that start stacks of their own;
- ``main``: everything else (``tests/unit`` and the rest of ``tests/integration``).

Each group is a pytest session of its own (its own run id, so its own database, topics, consumer group
and service processes, conftest.py), on the same Kafka and ClickHouse, which are started first (once)
so the two sessions never race to start them. Fault tests never touch those: they start instances of
their own. Lines are prefixed with the group's name; the exit status is the first failing group's.
``TRUYVET_TEST_GROUPS=1`` runs everything in one session instead; arguments go to every pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The second group: two sessions one after the other, so the cluster profile (ZooKeeper, 3 brokers,
# 4 ClickHouse servers: about a third of a core when idle) is stopped before the fault scenarios run.
CLUSTER_PROFILE = [
    "tests/integration/cluster",
    "tests/integration/alerts/test_late_traced_persons.py",
    "tests/integration/reports/test_coverage_api.py",
    "tests/integration/trace_api/test_contact_rule.py",
    "tests/integration/streams/test_retention.py",
]
FAULT_SCENARIOS = [
    "tests/integration/faults",
    "tests/integration/truyvet/test_demo_restart.py",
]  # the crash-recovery scenarios (streams/test_crash_recovery.py) stay in `main`: it ended 3 minutes earlier
CLUSTER_GROUP = CLUSTER_PROFILE + FAULT_SCENARIOS
# The suite starts Kafka brokers, ZooKeeper and Kafka's storage tool dozens of times and runs each for
# minutes: their JVMs spend more CPU compiling with C2 than running. C1 only and the serial collector
# (read by every `java` the suite starts, through the JDK's own variable) halved a broker's CPU to start
# (10.3 s -> 4.8 s) and to take 200,000 records (9.4 s -> 4.3 s) here. Installations keep the JDK's
# defaults, made for long-lived servers.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def start_infra() -> None:
    """The session's Kafka and ClickHouse running (started if not), as conftest.py would, before either
    group's session asks for them."""
    os.environ.setdefault("TRUYVET_ENVIRONMENT", "test")
    env = {**os.environ, "TRUYVET_TOPIC_PREFIX": "suite-start-", "TRUYVET_CLICKHOUSE_DATABASE": "suite_start"}
    code = ("from truyvet.settings import CommonSettings\n"
            "from truyvet.stack.services import Stack\n"
            "from truyvet.schema import connect\n"
            "from truyvet.schema.migrate import drop_database\n"
            "settings = CommonSettings()\n"
            "Stack(settings).infra_up()\n"
            "db = connect(settings, database='default')\n"
            "drop_database(db, settings.clickhouse_database)\n"
            "db.close()\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


# Lines of pytest's short summary and its last line, repeated at the very end: a CI that keeps only the
# output's tail (warnings printed at the session's end can fill it) still shows what failed.
OUTCOME_PREFIXES = ("FAILED ", "ERROR ")


def is_outcome(line: str) -> bool:
    return line.startswith(OUTCOME_PREFIXES) or (line.startswith("=") and " in " in line and any(
        word in line for word in (" passed", " failed", " error", " skipped", "no tests ran")))


def run_group(name: str, sessions: list[list[str]], width: int, results: dict[str, int],
              outcomes: dict[str, list[str]]) -> None:
    """Run the group's pytest sessions one after the other (all of them, also after a failure)."""
    codes = []
    kept = outcomes.setdefault(name, [])
    for argv in sessions:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"[{name:<{width}}] {line}")
            sys.stdout.flush()
            if is_outcome(line):
                kept.append(line.rstrip())
        codes.append(proc.wait())
    results[name] = next((code for code in codes if code), 0)


def main(args: list[str]) -> int:
    os.environ.setdefault("JDK_JAVA_OPTIONS", TEST_JVM_OPTIONS)
    pytest = [sys.executable, "-m", "pytest"]
    if os.environ.get("TRUYVET_TEST_GROUPS", "2") == "1":
        return subprocess.call([*pytest, "tests/unit", "tests/integration", *args], cwd=ROOT)
    began = time.monotonic()
    start_infra()
    groups = {
        "main": [[*pytest, "tests/unit", "tests/integration", *(f"--ignore={p}" for p in CLUSTER_GROUP), *args]],
        "cluster": [[*pytest, *CLUSTER_PROFILE, *args], [*pytest, *FAULT_SCENARIOS, *args]],
    }
    width = max(map(len, groups))
    results: dict[str, int] = {}
    outcomes: dict[str, list[str]] = {}
    threads = [threading.Thread(target=run_group, args=(name, sessions, width, results, outcomes))
               for name, sessions in groups.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("\nsuite outcomes:")
    for name, lines in outcomes.items():
        for line in lines:
            print(f"[{name:<{width}}] {line}")
    print(f"suite: {', '.join(f'{n} exit {c}' for n, c in results.items())} "
          f"in {time.monotonic() - began:.0f} s (both groups at once)")
    return next((code for code in results.values() if code), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
