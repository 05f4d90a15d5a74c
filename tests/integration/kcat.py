"""kcat configured as an operator or a device would: ``truyvet kafka-config --role ROLE`` properties."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def truyvet(*args: str) -> str:
    """The operator's command, as a process (the session's environment: its data dir and ports)."""
    result = subprocess.run([sys.executable, "-m", "truyvet.cli", *args], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def kcat_config(role: str, folder: Path) -> tuple[Path, dict[str, str]]:
    """``truyvet kafka-config --role ROLE`` written to a file for ``kcat -F``, and kcat's environment (a
    librdkafka that Kafka 4 accepts for SCRAM: ``truyvet kafka-config --library-dir``)."""
    path = folder / f"{role}.properties"
    path.write_text(truyvet("kafka-config", "--role", role))
    env = {**os.environ, "LD_LIBRARY_PATH": truyvet("kafka-config", "--library-dir").strip()}
    return path, env
