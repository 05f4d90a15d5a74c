"""``truyvet qr-key list | rotate | retire KID``: the venue QR signing keys (Ed25519).

Rotation makes a new key sign new codes while codes already printed keep verifying; retirement
refuses every code its key signed. A running ingest API picks changes up within a second or so.
The ingest service's own command: the ``truyvet`` CLI finds it through the ``truyvet.commands`` entry
point (pyproject.toml), so the shared package imports no service.
"""

from __future__ import annotations

import click

from ingest.config import IngestSettings
from ingest.qr import KeyRing, KeyRingError


def _ring() -> KeyRing:
    ring = KeyRing(IngestSettings().keys_dir)
    ring.load()
    return ring


@click.group("qr-key")
def qr_key() -> None:
    """Venue QR signing keys (kept under INGEST_QR_KEYS_DIR, default .local/secrets/qr-keys; never in git)."""


@qr_key.command("list")
def list_keys() -> None:
    """Show every key: id, created, retired, which one signs new codes."""
    for key in _ring().keys():
        state = "active" if key.active else ("retired " + key.retired_at if key.retired_at else "verifies")
        click.echo(f"{key.kid}\tcreated {key.created_at}\t{state}")


@qr_key.command("rotate")
def rotate() -> None:
    """Make a new key active; print its id alone on the last line."""
    click.echo(_ring().rotate())


@qr_key.command("retire")
@click.argument("kid")
def retire(kid: str) -> None:
    """Refuse every code signed by KID from now on."""
    try:
        _ring().retire(kid)
    except KeyRingError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"retired {kid}")
