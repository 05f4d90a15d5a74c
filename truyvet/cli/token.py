"""``truyvet token create | revoke``."""

from __future__ import annotations

import click

from truyvet.auth import DEFAULT_TOKEN_DAYS, TOKEN_ROLES, Role, create_token, parse_lifetime, revoke_token
from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database


@click.group()
def token() -> None:
    """API tokens (stored hashed; the clear text is shown once)."""


@token.command("create")
@click.option("--role", type=click.Choice([r.value for r in TOKEN_ROLES]), required=True)
@click.option("--ward", default="", help="Ward code (required for health_center).")
@click.option("--name", default="", help="Who holds the token (shown in the audit log).")
@click.option("--expires", default=f"{DEFAULT_TOKEN_DAYS}d", show_default=True,
              help="Lifetime: days, hours or minutes (30d, 12h, 45m); at most 366 days.")
def create(role: str, ward: str, name: str, expires: str) -> None:
    """Print a new token alone on the last line of stdout."""
    try:
        lifetime = parse_lifetime(expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from exc
    db = ensure_database(common_settings())
    try:
        value = create_token(db, role=Role(role), ward_code=ward, name=name, lifetime=lifetime)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        db.close()
    click.echo(value)


@token.command("revoke")
@click.argument("prefix")
def revoke(prefix: str) -> None:
    """Revoke the token(s) whose first 10 characters are PREFIX."""
    db = ensure_database(common_settings())
    try:
        click.echo(f"revoked {revoke_token(db, prefix)} token(s)")
    finally:
        db.close()
