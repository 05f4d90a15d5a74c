"""What the CSV ``load`` commands share: open the database, run the loader, turn its error into a click error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from truyvet.schema.db import Database
from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database

T = TypeVar("T")

CSV_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def load_file(loader: Callable[[Database, Path], T], path: Path, error: type[Exception]) -> T:
    """``loader(db, path)`` on the configured database; ``error`` (bad file content) becomes a usage error."""
    db = ensure_database(common_settings())
    try:
        return loader(db, path)
    except error as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.close()
