"""The stack's data and secrets are its owner's alone (issue 13, item 8): nothing under the data dir's
stores, logs and secrets is readable by other users, and the servers keep it so for what they write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from truyvet.settings import CommonSettings
from truyvet.stack.clickhouse import ClickHouseNode
from truyvet.stack.processes import ProcessDir, process_umask


def test_data_logs_and_secrets_are_not_readable_by_others(infra: CommonSettings) -> None:
    data = infra.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("secrets", "clickhouse", "kafka", "logs", "run"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o700, name
    exposed: list[str] = []
    checked = 0
    for name in ("secrets", "clickhouse", "kafka", "logs", "run"):
        for root, dirs, files in os.walk(data / name):
            for entry in [*dirs, *files]:
                path = Path(root) / entry
                try:
                    mode = path.lstat().st_mode
                except FileNotFoundError:  # gone since the listing (an insert's temporary part, a rotated log)
                    continue
                if stat.S_ISLNK(mode):
                    continue
                checked += 1
                if mode & 0o007:
                    exposed.append(f"{oct(stat.S_IMODE(mode))} {path}")
    assert checked > 50 and not exposed, exposed[:20]
    for secret in (data / "secrets").glob("*.password"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    for config in (data / "clickhouse" / "users.xml", data / "kafka" / "server.properties"):
        assert stat.S_IMODE(config.stat().st_mode) == 0o600  # they hold password hashes / the admin's password


def test_the_servers_create_files_others_cannot_read(infra: CommonSettings) -> None:
    procs = ProcessDir(infra.data_dir)
    servers = {"kafka": procs.pid("kafka"), "clickhouse": ClickHouseNode(infra).server_pid()}
    running = {name: pid for name, pid in servers.items() if pid is not None}
    assert running, "the session's servers are not ours (an external stack): nothing to check"
    for name, pid in running.items():
        mask = process_umask(pid)
        assert mask is not None and mask & 0o007 == 0o007, (name, oct(mask or 0))
