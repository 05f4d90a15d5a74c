"""``truyvet units load FILE.csv``."""

from __future__ import annotations

from pathlib import Path

import click

from truyvet.cli.loading import CSV_FILE, load_file
from truyvet.units import UnitsError, load_units


@click.group()
def units() -> None:
    """Administrative units (columns code,name,level,parent_code)."""


@units.command("load")
@click.argument("path", type=CSV_FILE)
def load(path: Path) -> None:
    """Load units from PATH; units with the same code are replaced."""
    count = load_file(load_units, path, UnitsError)
    click.echo(f"loaded {count} units from {path}")
