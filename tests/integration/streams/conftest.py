"""Fixtures of the stream tests: a fresh pipeline (topics, database, workers) per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.streams.harness import Pipeline
from truyvet.schema import connect
from truyvet.schema.migrate import drop_database
from truyvet.settings import CommonSettings


@pytest.fixture()
def pipeline(infra: CommonSettings) -> Iterator[Callable[..., Pipeline]]:
    """``pipeline(**kw)`` -> a new :class:`Pipeline`; its workers are stopped and its database dropped after."""
    made: list[Pipeline] = []

    def make(**kw: object) -> Pipeline:
        p = Pipeline(infra, infra.data_dir / "test-runs" / "streams", **kw)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop_all()
        if p.clickhouse_port is None:
            db = connect(infra, database="default")
            try:
                drop_database(db, p.database)
            finally:
                db.close()
