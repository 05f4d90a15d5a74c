"""``truyvet posters --ward CODE [--category C] --out FILE.pdf``: a ward's venue posters in one PDF.

One A4 page per registered venue (truyvet/posters.py: name, address, category, validity, instructions,
the signed QR code). A venue registered before codes were stored gets one now, signed by the active key
(ingest's key ring), which is why this is ingest's command (found through ``truyvet.commands``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.progress import Progress

from ingest.config import IngestSettings
from ingest.qr import KeyRing
from ingest.venues import VenueStore
from truyvet.events import Category
from truyvet.posters import poster_venues, posters_pdf
from truyvet.schema import connect


@click.command("posters")
@click.option("--ward", "ward", required=True, help="ward or commune code")
@click.option("--category", type=click.Choice([c.value for c in Category]), default=None)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def posters(ward: str, category: str | None, out: Path) -> None:
    """Write the posters of a ward's venues (one category or all) to one PDF, one A4 page per venue."""
    settings = IngestSettings()
    db = connect(settings)
    try:
        ring = KeyRing(settings.keys_dir)
        ring.load()
        store = VenueStore(db)

        def sign(venue_id: str, valid_from: datetime | None, valid_until: datetime | None) -> str:
            payload = ring.sign(venue_id, valid_from=valid_from, valid_until=valid_until)
            store.save_qr(venue_id, payload, ring.active_kid)
            return payload

        with Progress(transient=True) as progress:
            task = progress.add_task(f"posters of {ward}", total=None)
            venues = poster_venues(db, ward, category, sign=sign)
            if not venues:
                raise click.ClickException(f"no registered venue in ward {ward}"
                                           + (f" of category {category}" if category else ""))
            progress.update(task, total=len(venues), description=f"{len(venues)} posters of {ward}")
            out.write_bytes(posters_pdf(venues, created_at=datetime.now(UTC)))
            progress.update(task, completed=len(venues))
    finally:
        db.close()
    click.echo(f"{len(venues)} pages written to {out}")
