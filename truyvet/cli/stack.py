"""``truyvet up | down | status | migrate``."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.cluster_stack import ClusterStack
from truyvet.stack.kafka import ensure_topics
from truyvet.stack.services import Stack

console = Console()


def current_stack(*, cluster: bool | None = None) -> Stack:
    """The cluster profile when asked, or when ``truyvet up --cluster`` left it running; else single-node."""
    settings = common_settings()
    if cluster is None:
        cluster = settings.clustered or ClusterStack(settings).nodes.running()
    return ClusterStack(settings) if cluster else Stack(settings)


@click.command()
@click.option("--workers", default=1, show_default=True, help="Stream workers to run (they share partitions).")
@click.option("--cluster", is_flag=True,
              help="The cluster profile: ZooKeeper, 3 Kafka nodes, 4 ClickHouse servers (2 shards x 2 replicas).")
@click.option("--ingest-workers", type=click.IntRange(min=1), default=None,
              help="Ingest processes sharing the ingest port (SO_REUSEPORT); default: as last asked, else 1.")
def up(workers: int, cluster: bool, ingest_workers: int | None) -> None:
    """Start Kafka, ClickHouse, the ingest API, the stream worker(s) and the trace API (only what is down)."""
    # Without the flag: the single-node default, unless the cluster profile is the one in use here
    # (``truyvet up --cluster`` ran and no ``truyvet down`` since): then it restarts what is down there.
    stack = current_stack(cluster=True if cluster else None)
    what = "the cluster (first run fetches ZooKeeper and Kafka jars)" if stack.profile == "cluster" else \
        "the stack (first run fetches Kafka jars and installs ClickHouse)"
    with console.status(f"starting {what}..."):
        stack.up(workers=workers, ingest_workers=ingest_workers)
    _print_status(stack)


@click.command()
def down() -> None:
    """Stop every process of the local stack (either profile)."""
    settings = common_settings()
    stopped = ClusterStack(settings).down() if ClusterStack(settings).nodes.running() else []
    stopped += Stack(settings).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document (docs/api.md, v2) instead of a table.")
def status(as_json: bool) -> None:
    """Each component with its pid, address, health and version; exit 1 if any is not up."""
    stack = current_stack()
    rows = stack.status()
    if as_json:
        components = [{**row, "pid": int(row["pid"]) if row["pid"].isdigit() else None} for row in rows]
        click.echo(json.dumps({"profile": stack.profile, "components": components}, ensure_ascii=False))
    else:
        _print_rows(rows)
    if any(row["health"] != "up" for row in rows):
        raise SystemExit(1)


@click.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations and create missing Kafka topics (for external services)."""
    settings = common_settings()
    ensure_database(settings).close()
    created = ensure_topics(settings)
    console.print(f"schema up to date; topics created: {', '.join(created) or 'none needed'}")


def _print_status(stack: Stack) -> None:
    _print_rows(stack.status())


def _print_rows(rows: list[dict[str, str]]) -> None:
    table = Table(title="Truy Vết local stack")  # (either profile: the rows name the nodes)
    for column in ("component", "kind", "pid", "address", "health", "version"):
        table.add_column(column)
    for row in rows:
        style = "green" if row["health"] == "up" else "red"
        table.add_row(row["name"], row["kind"], row["pid"], row["address"], f"[{style}]{row['health']}[/]",
                      row["version"])
    console.print(table)
