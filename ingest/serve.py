"""One process of the ingest pool: ``python -m ingest.serve`` (what ``truyvet up --ingest-workers N`` runs N of).

Every process of the pool binds the ingest address (``TRUYVET_BIND_HOST``:``TRUYVET_INGEST_PORT``) with
``SO_REUSEPORT``: the kernel hands each new connection to one of the listening processes, so clients
keep one address while the processes are separate (one pid each, each stopped, killed and restarted on
its own; no supervisor in between). Each process also listens on a port of its own, chosen by the
kernel and written to ``<data dir>/run/ingest-own/<pid>`` (with the shared address), so ``truyvet
status`` asks every process for its health (the shared port would answer from whichever process the
kernel picks).

``SO_REUSEPORT`` would also let an unrelated process of the same user share the port (another stack
left on the same ingest port) and silently split the traffic: a process refuses to start when the
port already answers and no live process of its pool (same data dir, same shared address) holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

import uvicorn

from truyvet.settings import CommonSettings

BACKLOG = 2048


def own_address_dir(settings: CommonSettings) -> Path:
    """Where each ingest process writes its own address, one file per pid."""
    return settings.data_dir / "run" / "ingest-own"


def shared_socket(host: str, port: int) -> socket.socket:
    """The pool's listening socket: every process binds it with SO_REUSEPORT before listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def pool_members(settings: CommonSettings, shared: str) -> list[int]:
    """Live processes (other than this one) of the pool serving ``shared`` from this data dir."""
    members = []
    for record in own_address_dir(settings).glob("[0-9]*"):
        try:
            pid = int(record.name)
            if pid != os.getpid() and json.loads(record.read_text()).get("shared") == shared:
                os.kill(pid, 0)
                members.append(pid)
        except (ValueError, OSError, AttributeError):
            continue
    return members


def port_taken_by_others(settings: CommonSettings, *, wait: float = 5.0) -> bool:
    """True when the ingest port answers but no process of our pool listens there (after ``wait`` s: a
    sibling started at the same moment writes its record just after it binds)."""
    host, port = settings.bind_host, settings.ingest_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) != 0:
            return False
    deadline = time.monotonic() + wait
    while not pool_members(settings, f"{host}:{port}"):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.2)
    return False


def own_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(64)
    return sock


def main() -> None:
    settings = CommonSettings()
    address = f"{settings.bind_host}:{settings.ingest_port}"
    if port_taken_by_others(settings):
        sys.exit(f"ingest: {address} is already served by a process outside this pool (another stack on the "
                 "same port?); with SO_REUSEPORT the two would split the traffic: not starting")
    shared = shared_socket(settings.bind_host, settings.ingest_port)
    own = own_socket(settings.bind_host)
    host, port = own.getsockname()[:2]
    directory = own_address_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    record = directory / str(os.getpid())
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps({"own": f"http://{host}:{port}", "shared": address}))
    tmp.replace(record)
    config = uvicorn.Config("ingest.main:app", access_log=False, log_level="warning", backlog=BACKLOG)
    try:
        uvicorn.Server(config).run(sockets=[shared, own])
    finally:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()


if __name__ == "__main__":
    main()
