"""``truyvet webhook set | list``: where each ward health center receives its alerts (a ``truyvet.commands``
entry point: the shared CLI finds it without importing the service)."""

from __future__ import annotations

import click

from streams.alerting.webhooks import set_webhook, valid_url, webhooks
from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database


@click.group()
def webhook() -> None:
    """Alert webhooks of ward health centers (JSON POST, HMAC-SHA256 signed with the ward's secret)."""


@webhook.command("set")
@click.option("--ward", required=True, help="Ward code (a loaded unit).")
@click.argument("url")
@click.argument("secret")
def set_(ward: str, url: str, secret: str) -> None:
    """Deliver the alerts of ward CODE to URL, signed with SECRET (replaces the ward's webhook)."""
    if not valid_url(url):
        raise click.UsageError(f"not an http(s) URL: {url}")
    if len(secret) < 16:
        raise click.UsageError("the secret must be at least 16 characters")
    db = ensure_database(common_settings())
    try:
        known = db.execute("SELECT count() FROM units FINAL WHERE code = %(c)s", {"c": ward})[0][0]
        if not known:
            raise click.UsageError(f"unknown ward code {ward!r} (load units first)")
        set_webhook(db, ward_code=ward, url=url, secret=secret)
    finally:
        db.close()
    click.echo(f"ward {ward}: alerts go to {url}")


@webhook.command("list")
def list_() -> None:
    """Show each ward's webhook URL (never the secret)."""
    db = ensure_database(common_settings())
    try:
        for ward, hook in sorted(webhooks(db).items()):
            click.echo(f"{ward}\t{hook.url}")
    finally:
        db.close()
