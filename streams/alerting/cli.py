"""``truyvet webhook set | list``: where each ward health center receives its alerts (a ``truyvet.commands``
entry point: the shared CLI finds it without importing the service)."""

from __future__ import annotations

from typing import TextIO

import click

from streams.alerting.settings import get_settings
from streams.alerting.targets import check_url
from streams.alerting.webhooks import cipher, set_webhook, webhooks
from truyvet.exceptions import ConfigError
from truyvet.settings import common_settings
from truyvet.stack.clickhouse import ensure_database


@click.group()
def webhook() -> None:
    """Alert webhooks of ward health centers (JSON POST, HMAC-SHA256 signed with the ward's secret)."""


@webhook.command("set")
@click.option("--ward", required=True, help="Ward code (a loaded unit).")
@click.option("--secret-file", type=click.File("r"), default="-", show_default=True,
              help="File holding the signing secret ('-': read it from stdin). Never an argument: argv is "
                   "visible to every local user.")
@click.argument("url")
def set_(ward: str, secret_file: TextIO, url: str) -> None:
    """Deliver the alerts of ward CODE to URL, signed with the secret read from stdin or --secret-file
    (replaces the ward's webhook; the secret is stored encrypted)."""
    settings = get_settings()
    problem = check_url(url, allow_private=settings.webhook_allow_private)
    if problem:
        raise click.UsageError(problem)
    if secret_file.isatty():
        secret = click.prompt("Webhook secret", hide_input=True, err=True)
    else:
        secret = secret_file.read().strip()
    if len(secret) < 16:
        raise click.UsageError("the secret must be at least 16 characters")
    try:
        box = cipher(settings, create=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    db = ensure_database(settings)
    try:
        known = db.execute("SELECT count() FROM units FINAL WHERE code = %(c)s", {"c": ward})[0][0]
        if not known:
            raise click.UsageError(f"unknown ward code {ward!r} (load units first)")
        set_webhook(db, ward_code=ward, url=url, secret=secret, box=box)
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
