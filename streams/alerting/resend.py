"""``truyvet alerts resend [--ward CODE] [--since ISO]``: deliver again the alerts not delivered yet.

A ward with no webhook, or with its webhook down for hours, still has every alert: the dispatcher
records each one (``pending``, ``retrying``, then ``failed`` once its retries are spent; ``GET /v1/alerts``
and the ward's dashboard page list them). Once the ward's receiver is back (or its webhook set), this
command posts each undelivered alert once more, signed like the dispatcher does, with the same
``alert_id`` as ``Idempotency-Key`` (a receiver that got it before drops the copy), and records the
outcome (``delivered``, or ``failed`` again with the error). A ``truyvet.commands`` entry point.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import click
from rich.progress import Progress

from streams.alerting.delivery import ALERT_COLUMNS, Status, WebhookDirectory, alert_row, signed_headers
from streams.alerting.settings import get_settings
from truyvet.events import Alert
from truyvet.schema import connect
from truyvet.schema.db import Database


def undelivered(db: Database, *, ward: str | None, since: datetime | None) -> list[Alert]:
    """Alerts whose latest state is not ``delivered`` (oldest first)."""
    where: list[str] = ["1 = 1"]
    params: dict[str, object] = {}
    if ward is not None:
        where.append("ward_code = %(ward)s")
        params["ward"] = ward
    if since is not None:
        where.append("created_at >= %(since)s")
        params["since"] = since
    rows = db.execute(
        "SELECT alert_id, case_id, person_id, generation, ward_code, venue_id, created_at, kind "
        f"FROM (SELECT * FROM alerts FINAL WHERE {' AND '.join(where)}) WHERE status != %(done)s "
        "ORDER BY created_at, alert_id", {**params, "done": Status.DELIVERED})
    return [Alert(alert_id=a, case_id=c, person_id=p, generation=int(g), ward_code=w, venue_id=v,
                  created_at=t.replace(tzinfo=UTC) if t.tzinfo is None else t, kind=k or "contact")
            for a, c, p, g, w, v, t, k in rows]


def _attempts(db: Database, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = db.execute("SELECT alert_id, attempts FROM alerts FINAL WHERE alert_id IN %(ids)s", {"ids": tuple(ids)})
    return {str(a): int(n) for a, n in rows}


async def _send(alerts: list[Alert], db: Database, hooks: WebhookDirectory, timeout: float,
                progress: Progress | None) -> dict[str, int]:
    tried = _attempts(db, [a.alert_id for a in alerts])
    outcome = {"delivered": 0, "failed": 0}
    rows: list[tuple[object, ...]] = []
    task = progress.add_task("alerts", total=len(alerts)) if progress else None
    limit = asyncio.Semaphore(16)

    async def one(alert: Alert, client: aiohttp.ClientSession) -> None:
        body = alert.model_dump_json().encode()
        hook = hooks.get(alert.ward_code)
        attempts = tried.get(alert.alert_id, 0) + 1
        error = f"no webhook configured for ward {alert.ward_code!r}"
        if hook is not None:
            async with limit:
                try:
                    async with client.post(hook.url, data=body,
                                           headers=signed_headers(hook.secret, body, alert.alert_id)) as r:
                        await r.read()
                        error = "" if 200 <= r.status < 300 else f"HTTP {r.status} from {hook.url}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"{type(exc).__name__} posting to {hook.url}: {exc}"
        now = datetime.now(UTC).replace(microsecond=0)
        if error:
            rows.append(alert_row(alert, status=Status.DEAD_LETTERED, attempts=attempts, error=error,
                                  version=time.time_ns()))
            outcome["failed"] += 1
        else:
            rows.append(alert_row(alert, status=Status.DELIVERED, attempts=attempts, delivered_at=now,
                                  version=time.time_ns()))
            outcome["delivered"] += 1
        if progress is not None and task is not None:
            progress.advance(task)

    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as client:
        await asyncio.gather(*(one(a, client) for a in alerts))
    db.insert("alerts", ALERT_COLUMNS, rows)
    return outcome


def resend(*, ward: str | None, since: datetime | None, progress: Progress | None = None) -> dict[str, int]:
    """Deliver every undelivered alert (of ``ward``, created at or after ``since``) once; record each outcome."""
    settings = get_settings()
    db = connect(settings)
    hooks = WebhookDirectory(lambda: connect(settings), ttl=3600)
    try:
        alerts = undelivered(db, ward=ward, since=since)
        return asyncio.run(_send(alerts, db, hooks, settings.request_timeout_seconds, progress))
    finally:
        hooks.close()
        db.close()


@click.group()
def alerts() -> None:
    """Alerts of ward health centers: deliver again what was not delivered."""


@alerts.command("resend")
@click.option("--ward", default=None, help="Only this ward's alerts.")
@click.option("--since", default=None, help="Only alerts created at or after this RFC 3339 time.")
def resend_command(ward: str | None, since: str | None) -> None:
    """Deliver again every alert not delivered yet (pending or failed), with the same alert_id."""
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise click.UsageError(f"--since: not an RFC 3339 time: {since}") from None
        if start.tzinfo is None:
            raise click.UsageError("--since needs an offset (e.g. Z or +07:00)")
        start = start.astimezone(UTC)
    with Progress(transient=True) as progress:
        outcome = resend(ward=ward, since=start, progress=progress)
    click.echo(f"delivered {outcome['delivered']}, still failed {outcome['failed']}")
    if outcome["failed"]:
        raise SystemExit(1)
