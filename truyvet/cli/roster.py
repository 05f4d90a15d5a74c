"""``truyvet roster load FILE.csv``."""

from __future__ import annotations

from pathlib import Path

import click

from truyvet.roster import RosterError, load_roster
from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database


@click.group()
def roster() -> None:
    """Establishments that must scan (columns ward_code,category,name,address)."""


@roster.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(path: Path) -> None:
    """Load PATH; the roster of each ward named in it is replaced."""
    db = ensure_database(common_settings())
    try:
        per_ward = load_roster(db, path)
    except RosterError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.close()
    click.echo(f"loaded {sum(per_ward.values())} establishments in {len(per_ward)} wards from {path}")
