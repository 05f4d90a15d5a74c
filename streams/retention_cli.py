"""``truyvet retention run``: apply every retention rule now (the worker's leader also does, every
``STREAMS_RETENTION_CHECK_SECONDS``). A ``truyvet.commands`` entry point."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from streams.config import StreamsSettings
from streams.retention import drop_expired, rules, sweep


@click.group()
def retention() -> None:
    """Retention of visits, personal details, phones, citizens, cases, alerts, follow-ups, audit log."""


@retention.command("run")
def run() -> None:
    """Delete everything older than its retention period now, and show what went."""
    settings = StreamsSettings()
    visits = drop_expired(settings)
    removed = sweep(settings, audit=True)  # as the admin account: the audit log's database too
    table = Table(title="Retention")
    for name in ("store", "kept (days)", "removed"):
        table.add_column(name, justify="left" if name == "store" else "right")
    table.add_row("visits (daily partitions)", str(settings.retention_days), str(len(visits)))
    for rule in rules(settings):
        unit = " months" if rule.table == "audit_log" else " rows"
        table.add_row(rule.table, str(rule.days), f"{removed.get(rule.table, 0)}{unit}")
    Console().print(table)
