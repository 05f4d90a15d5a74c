"""``truyvet roster load FILE.csv``."""

from __future__ import annotations

from pathlib import Path

import click

from truyvet.cli.loading import CSV_FILE, load_file
from truyvet.roster import RosterError, load_roster


@click.group()
def roster() -> None:
    """Establishments that must scan (columns ward_code,category,name,address)."""


@roster.command("load")
@click.argument("path", type=CSV_FILE)
def load(path: Path) -> None:
    """Load PATH; the roster of each ward named in it is replaced."""
    per_ward = load_file(load_roster, path, RosterError)
    click.echo(f"loaded {sum(per_ward.values())} establishments in {len(per_ward)} wards from {path}")
