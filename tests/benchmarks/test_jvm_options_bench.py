"""Benchmark: a Kafka broker's CPU with the JDK's defaults and with the suite's JVM options.

``make test`` starts brokers, ZooKeeper and Kafka's storage tool dozens of times, each for minutes, so it
runs them with ``tests/run_suite.py``'s ``TEST_JVM_OPTIONS`` (C1 only, serial collector) through the JDK's
``JDK_JAVA_OPTIONS``. For each setting: a broker of its own (own data dir and ports) is formatted and
started, then takes 200,000 records of 200 bytes from one producer (``acks=all``), then idles for 60 s.
The broker's CPU seconds (user + system, from ``/proc``) are read after each step. Writes the
``jvm-options`` section of BENCHMARKS.md.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_jvm_options_bench.py -m benchmark -s``
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from rich.progress import Progress

from tests.benchmarks.report import write_section
from tests.benchmarks.scale_stack import cpu_seconds
from tests.run_suite import TEST_JVM_OPTIONS
from truyvet.kafka_clients import client_kwargs
from truyvet.settings import CommonSettings
from truyvet.stack.kafka import KafkaNode
from truyvet.stack.processes import free_port

pytestmark = pytest.mark.benchmark

RECORDS = 200_000
IDLE_SECONDS = 60


def _measure(tmp: Path, jvm_options: str, progress: Progress) -> dict[str, float]:
    base = CommonSettings()
    settings = base.model_copy(update={
        "data_dir": tmp, "kafka_bootstrap": f"127.0.0.1:{free_port()}", "kafka_controller_port": free_port()})
    (tmp / "kafka").mkdir(parents=True)
    (tmp / "kafka" / "libs").symlink_to(base.data_dir / "kafka" / "libs")  # the jars `make install` fetched
    before = os.environ.get("JDK_JAVA_OPTIONS")
    if jvm_options:
        os.environ["JDK_JAVA_OPTIONS"] = jvm_options
    else:
        os.environ.pop("JDK_JAVA_OPTIONS", None)
    node = KafkaNode(settings)
    try:
        began = time.monotonic()
        node.start()
        pid = node.procs.pid(node.name)
        assert pid is not None
        figures = {"ready (s)": time.monotonic() - began, "start (CPU s)": cpu_seconds(pid)}
        producer = KafkaProducer(**client_kwargs(settings), acks="all", linger_ms=5)
        task = progress.add_task(f"{jvm_options or 'JDK defaults'}: records", total=RECORDS)
        at = cpu_seconds(pid)
        for i in range(RECORDS):
            producer.send("jvm-bench", key=str(i % 1000).encode(), value=b"x" * 200)
            if i % 10_000 == 0:
                progress.update(task, completed=i)
        producer.flush()
        producer.close()
        progress.update(task, completed=RECORDS)
        figures[f"{RECORDS:,} records (CPU s)"] = cpu_seconds(pid) - at
        at = cpu_seconds(pid)
        time.sleep(IDLE_SECONDS)
        figures[f"idle {IDLE_SECONDS} s (CPU s)"] = cpu_seconds(pid) - at
        return figures
    finally:
        node.stop()
        if before is None:
            os.environ.pop("JDK_JAVA_OPTIONS", None)
        else:
            os.environ["JDK_JAVA_OPTIONS"] = before


def test_jvm_options(tmp_path: Path) -> None:
    with Progress() as progress:
        runs = {"JDK defaults": _measure(tmp_path / "defaults", "", progress),
                f"`{TEST_JVM_OPTIONS}`": _measure(tmp_path / "suite", TEST_JVM_OPTIONS, progress)}
    names = list(next(iter(runs.values())))
    lines = ["| | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    lines += [f"| {n} | " + " | ".join(f"{r[n]:.1f}" for r in runs.values()) + " |" for n in names]
    body = ("A Kafka 4 broker of its own (SASL, one node), formatted and started, then one kafka-python "
            "producer, then idle. CPU seconds of the broker process.\n\n" + "\n".join(lines) + "\n\n"
            "`make test` uses the second column's options for every JVM it starts; `truyvet up` keeps the "
            "JDK's defaults (C2 pays off in a server that runs for months).\n")
    print("\n" + body)
    write_section("jvm-options", "Kafka broker CPU: JDK defaults vs the suite's JVM options", body,
                  command="pytest tests/benchmarks/test_jvm_options_bench.py -m benchmark -s")
