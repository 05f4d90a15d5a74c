"""The ingest pool: N ``ingest.serve`` processes sharing the ingest port (``truyvet up --ingest-workers N``).

Names: ``ingest`` (the first), ``ingest-1``, ``ingest-2``...; each has its own pid file, so ``truyvet up``
restarts only the ones that are down and ``truyvet status`` shows one row per process. The pool size
asked for last is kept in ``run/ingest-workers`` so a later ``truyvet up`` or ``status`` without the
option keeps (and reports) the same shape.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from ingest.serve import own_address_dir
from truyvet.settings import CommonSettings
from truyvet.stack.processes import ProcessDir, alive

NAME = re.compile(r"^ingest(-\d+)?$")


def ingest_name(index: int) -> str:
    return f"ingest-{index}" if index else "ingest"


def pool_size_file(procs: ProcessDir) -> Path:
    return procs.run / "ingest-workers"


def pool_size(procs: ProcessDir, requested: int | None = None) -> int:
    """``requested`` when given (and remembered), else the size last asked for, else 1."""
    path = pool_size_file(procs)
    if requested is not None:
        if requested < 1:
            raise ValueError("--ingest-workers must be at least 1")
        path.write_text(str(requested))
        return requested
    try:
        return max(1, int(path.read_text().strip()))
    except (FileNotFoundError, ValueError):
        return 1


def running_names(procs: ProcessDir) -> list[str]:
    """Every ingest process with a pid file (also those beyond the current pool size)."""
    names = [p.stem for p in procs.run.glob("ingest*.pid") if NAME.match(p.stem)]
    return sorted(names, key=lambda n: int(n.rpartition("-")[2]) if "-" in n else 0)


def own_health_url(settings: CommonSettings, pid: int) -> str | None:
    """The health URL on the process's own port (written by ``ingest.serve``), or None if it has none."""
    try:
        base = json.loads((own_address_dir(settings) / str(pid)).read_text()).get("own")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return f"{base}/healthz" if base else None


def is_pool_process(pid: int) -> bool:
    """Whether ``pid`` runs ``ingest.serve`` (an ingest started by an older version runs uvicorn alone)."""
    try:
        return b"ingest.serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def forget_dead(settings: CommonSettings) -> None:
    """Drop the own-address files of processes that are gone (a kill -9 leaves its file behind)."""
    directory = own_address_dir(settings)
    for record in directory.glob("[0-9]*"):
        with contextlib.suppress(ValueError, FileNotFoundError):
            if not alive(int(record.name)):
                record.unlink()
