"""Changing replicated tables on the cluster profile: one statement per shard, on the replica leading it.

``ALTER ... DELETE``, ``DROP PARTITION`` and ``OPTIMIZE`` cannot go through a ``Distributed`` table, and
ClickHouse 18.16 forwards a partition change run on a non-leading replica to the leader as the
password-less ``default`` user, which an install of ours does not have (SECURITY.md). So the statement
runs on the local table of each server that leads it; the change then replicates to the other replica
of that shard. On one server (``servers`` is ``None``) the statement runs on the table itself.
Used by retention (streams/retention.py) and ``truyvet person erase`` (trace_api/erase.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from truyvet.schema.cluster import LOCAL
from truyvet.schema.db import Database
from truyvet.settings import CommonSettings


def server_settings(settings: CommonSettings) -> list[CommonSettings]:
    """One settings object per ClickHouse server of the profile (the first host and every alternate)."""
    hosts = [f"{settings.clickhouse_host}:{settings.clickhouse_port}"]
    hosts += [h for h in settings.clickhouse_alt_hosts.split(",") if h.strip()]
    out = []
    for host in hosts:
        name, _, port = host.strip().rpartition(":")
        out.append(settings.model_copy(update={"clickhouse_host": name, "clickhouse_port": int(port),
                                               "clickhouse_alt_hosts": ""}))
    return out


@contextmanager
def every_server(settings: CommonSettings) -> Iterator[Sequence[Database] | None]:
    """A client of every server, as ``settings``' account, on the cluster profile; ``None`` on one server."""
    from truyvet.schema import connect

    servers = [connect(each) for each in server_settings(settings)] if settings.clustered else None
    try:
        yield servers
    finally:
        for server in servers or ():
            server.close()


def leading(db: Database, servers: Sequence[Database] | None, database: str,
            table: str) -> list[tuple[Database, str]]:
    """Where to change ``database.table``: ``db`` itself on one server; on the cluster, each server that
    leads the replicated ``<table>_local`` (one per shard)."""
    if servers is None:
        return [(db, table)]
    return [(server, table + LOCAL) for server in servers if server.execute(
        "SELECT count() FROM system.replicas WHERE database = %(db)s AND table = %(t)s AND is_leader",
        {"db": database, "t": table + LOCAL})[0][0]]
