"""The ``truyvet`` command: thin click commands, one module per concern."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import click
from rich.logging import RichHandler

from truyvet.cli import access, demo, roster, stack, token, units


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def cli(verbose: bool) -> None:
    """Truy Vết: QR check-in contact tracing on Kafka, faust and ClickHouse."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(show_path=False)])
    # Readiness probes expect refused connections while Kafka starts; kafka-python warns on each.
    logging.getLogger("kafka").setLevel(logging.ERROR)


cli.add_command(stack.up)
cli.add_command(stack.down)
cli.add_command(stack.status)
cli.add_command(stack.migrate)
cli.add_command(token.token)
cli.add_command(units.units)
cli.add_command(roster.roster)
cli.add_command(demo.demo)
cli.add_command(access.sql)
cli.add_command(access.kafka_config)
# Commands of the services (ingest's ``qr-key``, alerting's ``webhook``), found by entry point: the shared package
# imports no service.
for command in entry_points(group="truyvet.commands"):
    cli.add_command(command.load(), command.name)


def main() -> None:
    cli()
