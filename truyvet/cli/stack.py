"""``truyvet up | down | status | migrate``."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database
from truyvet.stack.kafka import ensure_topics
from truyvet.stack.services import Stack

console = Console()


@click.command()
@click.option("--workers", default=1, show_default=True, help="Stream workers to run (they share partitions).")
def up(workers: int) -> None:
    """Start Kafka, ClickHouse, the ingest API, the stream worker(s) and the trace API."""
    settings = common_settings()
    with console.status("starting the stack (first run fetches Kafka jars and installs ClickHouse)..."):
        Stack(settings).up(workers=workers)
    _print_status(Stack(settings))


@click.command()
def down() -> None:
    """Stop every process of the local stack."""
    stopped = Stack(common_settings()).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@click.command()
def status() -> None:
    """Each component with its pid, address, health and version."""
    _print_status(Stack(common_settings()))


@click.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations and create missing Kafka topics (for external services)."""
    settings = common_settings()
    ensure_database(settings).close()
    created = ensure_topics(settings)
    console.print(f"schema up to date; topics created: {', '.join(created) or 'none needed'}")


def _print_status(stack: Stack) -> None:
    table = Table(title="Truy Vết local stack")
    for column in ("component", "pid", "address", "health", "version"):
        table.add_column(column)
    for row in stack.status():
        style = "green" if row["health"] == "up" else "red"
        table.add_row(row["component"], row["pid"], row["address"], f"[{style}]{row['health']}[/]", row["version"])
    console.print(table)
