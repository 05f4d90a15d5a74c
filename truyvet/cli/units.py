"""``truyvet units load FILE.csv``."""

from __future__ import annotations

from pathlib import Path

import click

from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database
from truyvet.units import UnitsError, load_units


@click.group()
def units() -> None:
    """Administrative units (columns code,name,level,parent_code)."""


@units.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(path: Path) -> None:
    """Load units from PATH; units with the same code are replaced."""
    db = ensure_database(common_settings())
    try:
        count = load_units(db, path)
    except UnitsError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.close()
    click.echo(f"loaded {count} units from {path}")
