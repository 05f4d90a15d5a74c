"""Session fixtures: the real Kafka and ClickHouse (started if not running), a unique topic prefix and
database per run, and the three services started as real processes against them.

Point ``TRUYVET_KAFKA_BOOTSTRAP`` / ``TRUYVET_CLICKHOUSE_HOST`` / ``TRUYVET_CLICKHOUSE_PORT`` at
running services to use those instead; otherwise the project's own local stack is started.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpcore  # noqa: F401 - imported up front, not lazily by the first httpx.Client of a test: a lazy
import httpx  # import while test threads come and go hit CPython 3.11.7's import-lock KeyError (issue 14)
import pytest

RUN_ID = secrets.token_hex(3)
os.environ.setdefault("TRUYVET_TOPIC_PREFIX", f"t{RUN_ID}-")
os.environ.setdefault("TRUYVET_CLICKHOUSE_DATABASE", f"test_{RUN_ID}")
os.environ.setdefault("TRUYVET_ENVIRONMENT", "test")
os.environ.setdefault("TRUYVET_PSEUDONYM_KEY", "test-pseudonym-key-" + RUN_ID)
os.environ.setdefault("STREAMS_APP_ID", f"truyvet-test-{RUN_ID}")
# Issue 13: webhook secrets are encrypted with this run's key; the tests' receivers listen on loopback,
# which only this setting allows (tests/integration/alerts/test_webhook_safety.py runs without it).
os.environ.setdefault("ALERTS_WEBHOOK_KEY", "dGVzdC13ZWJob29rLWtleS0zMi1ieXRlcy1sb25nISE=")
os.environ.setdefault("ALERTS_WEBHOOK_ALLOW_PRIVATE", "1")
# The suite traces hundreds of times a minute with one session token; the per-token limits themselves
# are tested on a trace API of their own (tests/integration/security/test_http_edge.py).
os.environ.setdefault("TRACE_TRACES_PER_MINUTE", "1000000")
os.environ.setdefault("TRACE_PERSONAL_READS_PER_MINUTE", "1000000")

from tests.services import RunningServices, running_services  # noqa: E402
from truyvet.auth import Role, create_token  # noqa: E402
from truyvet.schema.db import DriverDatabase  # noqa: E402
from truyvet.schema.migrate import drop_database  # noqa: E402
from truyvet.settings import PROJECT_ROOT, CommonSettings  # noqa: E402
from truyvet.stack.processes import ProcessDir, free_port  # noqa: E402
from truyvet.stack.services import Stack  # noqa: E402
from truyvet.units import load_units  # noqa: E402

ARTIFACTS = PROJECT_ROOT / "test-artifacts"

# The cluster profile's fixtures (cluster, cluster_db, cluster_services, profile): issue 12.
pytest_plugins = ["tests.cluster_fixtures"]


def clickhouse_env(settings: CommonSettings) -> dict[str, str]:
    """Environment of a process that must reach the session's ClickHouse while its own data dir (and
    so its own secrets) is elsewhere: the admin account with this installation's password."""
    admin = settings.as_account(clickhouse="admin")
    return {"TRUYVET_CLICKHOUSE_USER": "admin", "TRUYVET_CLICKHOUSE_PASSWORD": admin.clickhouse_secret()}


@pytest.fixture(scope="session")
def infra() -> Iterator[CommonSettings]:
    """Kafka + ClickHouse up, this run's topics and database created and migrated."""
    settings = CommonSettings()
    Stack(settings).infra_up()
    yield settings
    from truyvet.schema import connect

    db = connect(settings, database="default")
    try:
        drop_database(db, settings.clickhouse_database)
    finally:
        db.close()


@pytest.fixture(scope="session")
def db(infra: CommonSettings) -> Iterator[DriverDatabase]:
    from truyvet.schema import connect

    client = connect(infra)
    load_units(client, PROJECT_ROOT / "deploy" / "data" / "bac_kan_units.csv")
    yield client
    client.close()


@pytest.fixture(scope="session")
def services(infra: CommonSettings, db: DriverDatabase) -> Iterator[RunningServices]:
    """Ingest API, trace API and one stream worker as real processes, on free ports."""
    ports = {"TRUYVET_INGEST_PORT": free_port(), "TRUYVET_TRACE_PORT": free_port(),
             "TRUYVET_WORKER_METRICS_PORT": free_port()}
    ports["ALERTS_DISPATCHER_PORT"] = free_port()  # issue 6: the alert dispatcher's metrics
    env = {k: str(v) for k, v in ports.items()} | {"PYTHONPATH": str(PROJECT_ROOT)}
    env["ALERTS_BACKOFF_CAP_SECONDS"] = "4"  # issue 6: a receiver back up is retried within seconds
    os.environ.update(env)
    settings = CommonSettings()
    run_dir = infra.data_dir / "test-runs" / RUN_ID
    with running_services(settings, env, ProcessDir(run_dir), label="", timeout=90) as running:
        yield running


@pytest.fixture(scope="session")
def token(db: DriverDatabase):  # noqa: ANN201 - a factory
    """``token(role, ward="")`` -> auth headers for a fresh token."""

    def make(role: Role, ward: str = "") -> dict[str, str]:
        return {"Authorization": f"Bearer {create_token(db, role=role, ward_code=ward, name=f'test-{role.value}')}"}

    return make


@pytest.fixture()
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chdb_db() -> Iterator[object]:
    """Current ClickHouse in-process (chdb), migrated: the same schema and queries as the 18.16 server.

    One chdb session per test process (chdb keeps global state); tests use their own ids in it.
    """
    from truyvet.schema import apply_migrations
    from truyvet.schema.db import ChdbDatabase

    client = ChdbDatabase(database=f"chdb_{RUN_ID}")
    apply_migrations(client)
    yield client
    client.close()


@pytest.fixture(params=["server", "chdb"])
def any_db(request: pytest.FixtureRequest) -> object:
    """Parametrizes a test over the 18.16 server and current ClickHouse (chdb), both migrated."""
    return request.getfixturevalue("db" if request.param == "server" else "chdb_db")
