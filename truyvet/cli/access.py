"""``truyvet sql QUERY`` and ``truyvet kafka-config --role ROLE``: operators' access to the stores."""

from __future__ import annotations

import click
from kafka import KafkaAdminClient
from rich.console import Console
from rich.table import Table

from truyvet.exceptions import TruyvetError
from truyvet.kafka_clients import client_kwargs, librdkafka_dir, librdkafka_properties
from truyvet.schema import connect
from truyvet.settings import common_settings
from truyvet.stack.kafka_accounts import ROLES, ensure_accounts

console = Console()


@click.command()
@click.argument("query")
@click.option("--database", default=None, help="Database to run in (default: the installation's).")
def sql(query: str, database: str | None) -> None:
    """Run one ClickHouse query as the admin account and print its result as a table."""
    settings = common_settings().as_account(clickhouse="admin")
    db = connect(settings, database=database)
    try:
        result = db.execute_with_columns(query)
    except TruyvetError as exc:
        text = str(exc.__cause__ or exc).split("Stack trace")[0]
        raise click.ClickException(" ".join(text.split())[:1000]) from exc
    finally:
        db.close()
    rows, columns = result
    if not columns:
        console.print("ok")
        return
    table = Table(*[name for name, _ in columns], caption=f"{len(rows)} row(s)")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@click.command("kafka-config")
@click.option("--role", type=click.Choice(ROLES),
              help="Whose account: device (writes scans only), admin, ingest, worker, trace, dispatcher.")
@click.option("--library-dir", is_flag=True,
              help="Print instead a folder with a librdkafka able to use SCRAM with Kafka 4, for "
                   "LD_LIBRARY_PATH (Debian 12's kcat links librdkafka 2.0.2, which Kafka 4 refuses).")
def kafka_config(role: str | None, library_dir: bool) -> None:
    """Create (or reuse) ROLE's Kafka account and print librdkafka/kcat properties (``kcat -F FILE``)."""
    settings = common_settings()
    if library_dir:
        found = librdkafka_dir(settings.data_dir)
        if found is None:
            raise click.ClickException("no current librdkafka found (pip install confluent-kafka)")
        click.echo(str(found))
        return
    if role is None:
        raise click.UsageError("--role is required")
    admin = KafkaAdminClient(**client_kwargs(settings.as_account(kafka="admin")), request_timeout_ms=15000)
    try:
        ensure_accounts(admin, settings, roles=(role,))
    finally:
        admin.close()
    for key, value in librdkafka_properties(settings.as_account(kafka=role)).items():
        click.echo(f"{key}={value}")
