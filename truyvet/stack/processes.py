"""Detached processes with pid files and log files under the data directory."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from truyvet.exceptions import StackError
from truyvet.secretstore import make_private_dir, private_umask

logger = logging.getLogger(__name__)

# Popen objects of the children this process started: kept so they are reaped (not leaked) on stop.
_children: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _leave_running() -> None:
    """Children meant to outlive us (Kafka and ClickHouse, reused by the next command or test run) stay
    up, detached in their own sessions; we stop waiting for them without a ResourceWarning at exit."""
    for proc in _children.values():
        if proc.poll() is None:
            proc.returncode = 0  # no longer ours to reap: ``truyvet down`` stops them by pid file
    _children.clear()


class ProcessDir:
    """Where a stack keeps pid files (``run/``) and logs (``logs/``)."""

    def __init__(self, data_dir: Path) -> None:
        self.run = data_dir / "run"
        self.logs = data_dir / "logs"
        # Logs and pid files are the operator's alone (logs may name venues, wards, persons' ids).
        make_private_dir(self.run)
        make_private_dir(self.logs)

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The recorded pid if that process is still alive, else ``None`` (and the stale file goes)."""
        path = self.pid_file(name)
        try:
            pid = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if alive(pid):
            return pid
        path.unlink(missing_ok=True)
        return None

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """Start ``argv`` in its own session (so ``stop`` can end its whole group); return the pid."""
        existing = self.pid(name)
        if existing:
            return existing
        with private_umask():
            log = self.log_file(name).open("ab")
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
                umask=0o077,  # what the stack writes (data, logs, state) is its owner's alone
            )
        finally:
            log.close()
        _children[proc.pid] = proc
        with private_umask():
            self.pid_file(name).write_text(str(proc.pid))
        logger.info("started %s pid=%s", name, proc.pid)
        return proc.pid

    def stop(self, name: str, *, timeout: float = 20) -> bool:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``; True if it was running."""
        pid = self.pid(name)
        if pid is None:
            return False
        terminate_group(pid, timeout=timeout)
        self.pid_file(name).unlink(missing_ok=True)
        return True


def process_umask(pid: int) -> int | None:
    """The file creation mask of a running process (``/proc/<pid>/status``), if readable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        return None
    return None


def lax_umask(pid: int | None) -> bool:
    """True when our process ``pid`` creates files anyone may read (started before the stack set 077;
    ClickHouse sets its own 027 at start: group read, nothing for others)."""
    mask = process_umask(pid) if pid is not None else None
    return mask is not None and mask & 0o007 != 0o007


def alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:  # our own child: ask its Popen, which also reaps it
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def terminate_group(pid: int, *, timeout: float = 20) -> None:
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10)
            while time.monotonic() < deadline:
                if not alive(pid) and not _group_alive(pid):
                    return
                time.sleep(0.1)
        if alive(pid):
            raise StackError("process did not stop", pid=pid)
    finally:
        child = _children.pop(pid, None)
        if child is not None and child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # Members may all be zombies already reaped by init; check /proc for live ones.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.25) -> None:
    """Poll ``check`` until it is true; raise :class:`StackError` naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # readiness probes fail in many ways until the service is up
            last_error = exc
        time.sleep(interval)
    raise StackError(f"{what} not ready after {timeout:.0f}s", last_error=repr(last_error))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_jars(pom: Path, libs: Path, what: str, installed: Callable[[], bool]) -> None:
    """Copy a pom's dependencies from Maven Central into ``libs`` unless ``installed()`` already holds
    (Maven's own cache makes a re-run cheap). Kafka and ZooKeeper are both fetched this way."""
    if installed():
        return
    if not shutil.which("mvn"):
        raise StackError(f"Maven (mvn) is needed to fetch the {what} jars; apt-get install maven")
    libs.mkdir(parents=True, exist_ok=True)
    logger.info("resolving %s jars from Maven Central into %s", what, libs)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={libs}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0 or not installed():
        raise StackError(f"mvn could not resolve the {what} jars", output=result.stdout[-2000:])
