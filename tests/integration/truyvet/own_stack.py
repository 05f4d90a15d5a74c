"""A stack of a test's own: its data dir and free ports, the Kafka jars already fetched reused."""

from __future__ import annotations

import os
from pathlib import Path

from truyvet.settings import PROJECT_ROOT
from truyvet.stack.processes import free_port


def own_stack_env(data: Path, app_id: str, **ports: int) -> dict[str, str]:
    """The environment of ``truyvet`` commands for a stack under ``data``; ``ports`` fixes some of them
    (``ingest``, ``trace``, ``metrics``), the others are free ports."""
    jars = PROJECT_ROOT / ".local" / "kafka" / "libs"
    if jars.exists():  # reuse the jars already fetched (Maven's cache would serve them too)
        (data / "kafka").mkdir(parents=True)
        (data / "kafka" / "libs").symlink_to(jars)
    return {
        **os.environ,
        "TRUYVET_DATA_DIR": str(data),
        "TRUYVET_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "TRUYVET_KAFKA_CONTROLLER_PORT": str(free_port()),
        "TRUYVET_CLICKHOUSE_PORT": str(free_port()),
        "TRUYVET_CLICKHOUSE_HTTP_PORT": str(free_port()),
        "TRUYVET_INGEST_PORT": str(ports.get("ingest") or free_port()),
        "TRUYVET_TRACE_PORT": str(ports.get("trace") or free_port()),
        "TRUYVET_WORKER_METRICS_PORT": str(ports.get("metrics") or free_port()),
        "ALERTS_DISPATCHER_PORT": str(free_port()),
        "TRUYVET_TOPIC_PREFIX": "",
        "TRUYVET_CLICKHOUSE_DATABASE": "truyvet",
        "STREAMS_APP_ID": app_id,
        "COLUMNS": "200",
    }
