"""One process of the ingest pool: ``python -m ingest.serve`` (what ``truyvet up --ingest-workers N`` runs N of).

Every process of the pool binds the ingest address (``TRUYVET_BIND_HOST``:``TRUYVET_INGEST_PORT``) with
``SO_REUSEPORT``: the kernel hands each new connection to one of the listening processes, so clients
keep one address while the processes are separate (one pid each, each stopped, killed and restarted on
its own; no supervisor in between). Each process also listens on a port of its own, chosen by the
kernel and written to ``<data dir>/run/ingest-own/<pid>``, so ``truyvet status`` asks every process
for its health (the shared port would answer from whichever process the kernel picks).
"""

from __future__ import annotations

import contextlib
import os
import socket
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


def own_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(64)
    return sock


def main() -> None:
    settings = CommonSettings()
    shared = shared_socket(settings.bind_host, settings.ingest_port)
    own = own_socket(settings.bind_host)
    host, port = own.getsockname()[:2]
    directory = own_address_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    record = directory / str(os.getpid())
    tmp = record.with_suffix(".tmp")
    tmp.write_text(f"http://{host}:{port}")
    tmp.replace(record)
    config = uvicorn.Config("ingest.main:app", access_log=False, log_level="warning", backlog=BACKLOG)
    try:
        uvicorn.Server(config).run(sockets=[shared, own])
    finally:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()


if __name__ == "__main__":
    main()
