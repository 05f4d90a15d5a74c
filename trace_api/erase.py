"""``truyvet person erase ID``: remove a person's personal details and phone (a ``truyvet.commands`` entry).

Every personal store (``<db>_personal``: details, conflicting cards, phones, printed cards) and the
residence ward kept for the worker (``person_wards``) lose every row of the person (``ALTER TABLE ...
DELETE``, waited for until the server has applied it); the phone is hidden from every reader at once.
The audit log keeps that it happened (who ran it, when, the pseudonymous id, how many rows each store
held), never the data.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Sequence

import click

from trace_api import audit, phones
from truyvet.auth import Principal, Role
from truyvet.events import is_raw_id_number
from truyvet.schema import connect
from truyvet.schema.databases import PERSONAL_TABLES, database_of
from truyvet.schema.db import Database
from truyvet.schema.replicas import every_server, leading
from truyvet.settings import common_settings

STORES = (*PERSONAL_TABLES, "person_wards")


def _held(db: Database, person_id: str) -> dict[str, int]:
    return {t: int(db.execute(f"SELECT count() FROM {database_of(db.name, t)}.{t} WHERE person_id = %(p)s",
                              {"p": person_id})[0][0]) for t in STORES}


def erase(db: Database, person_id: str, *, actor: str, timeout: float = 120.0,
          servers: Sequence[Database] | None = None) -> dict[str, int]:
    """Remove ``person_id`` from the restricted stores; return the rows each held. Audited.

    :param servers: on the cluster profile, a client of every server: the deletion runs on the replicated
        local tables, on the replica leading each shard (truyvet/schema/replicas.py); a ``Distributed``
        table takes no ``ALTER ... DELETE``.
    """
    held = _held(db, person_id)
    if held["person_contacts"]:
        phones.delete_phone(db, person_id)  # no reader sees the phone from now on, before the rows go
    for table in STORES:
        if held[table] or table == "person_contacts":
            database = database_of(db.name, table)
            for server, target in leading(db, servers, database, table):
                server.execute(f"ALTER TABLE {database}.{target} DELETE WHERE person_id = %(p)s", {"p": person_id})
    deadline = time.monotonic() + timeout
    while any(_held(db, person_id).values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server has not applied the erasure of {person_id} within {timeout:.0f}s")
        time.sleep(0.2)
    audit.record(db, Principal("cli", Role.admin, "", actor), audit.PERSON_ERASE,
                 params={"person_id": person_id, "stores": held}, result_count=sum(held.values()))
    return held


@click.group()
def person() -> None:
    """A person's data in the restricted stores."""


@person.command("erase")
@click.argument("person_id")
def erase_command(person_id: str) -> None:
    """Remove PERSON_ID's personal details and phone (the audit log records that it happened)."""
    if is_raw_id_number(person_id) or not person_id.replace("-", "").replace("_", "").isalnum():
        raise click.UsageError("PERSON_ID is the pseudonymous id (1-64 of A-Z a-z 0-9 _ -), not an ID number")
    settings = common_settings()
    db = connect(settings)  # the operator's (admin) account: the restricted stores and the audit log
    try:
        with every_server(settings) as servers:
            held = erase(db, person_id, actor=f"cli:{getpass.getuser()}", servers=servers)
    finally:
        db.close()
    click.echo(f"erased {person_id}: personal details {held['person_details']} rows, "
               f"phone {held['person_contacts']} rows, conflicting cards {held['person_details_conflicts']} rows, "
               f"printed cards {held['person_cards']} rows, residence ward {held['person_wards']} rows")
