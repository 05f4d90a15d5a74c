"""The trace API application (``uvicorn trace_api.main:app``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

import trace_api.routes.alerts as alerts  # issue 6
import trace_api.routes.compliance as compliance  # issue 15
import trace_api.routes.declarations as declarations  # issue 15
from trace_api import openapi
from trace_api.config import get_settings
from trace_api.routes import audit as audit_routes
from trace_api.routes import cases, dashboard, persons, reports
from trace_api.routes import citizens as citizen_routes  # issue 14
from trace_api.routes import followups as followup_routes  # issue 14
from truyvet.auth import TokenStore
from truyvet.schema import connect
from truyvet.web import install_error_handlers, install_health_and_metrics

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.settings = settings
    app.state.tokens = TokenStore(connect(settings))
    # A depth-2 answer builds hundreds of thousands of small objects; the collector's default pace
    # re-walked the whole heap of the service several times per answer (measured: a 21,600-contact
    # answer built in 500 ms, 90 ms without collections). What exists at start-up is frozen out of
    # every collection, and the youngest generation is collected every 50,000 allocations, not 700.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    yield


app = FastAPI(title="Truy Vết trace API", version="1", lifespan=lifespan,
              default_response_class=ORJSONResponse)
install_error_handlers(app)
openapi.install(app)
install_health_and_metrics(app, lambda: {"service": "trace"})
app.include_router(cases.router)
app.include_router(alerts.router)  # issue 6
app.include_router(persons.router)
app.include_router(audit_routes.router)
app.include_router(reports.router)
app.include_router(dashboard.router)
app.include_router(compliance.router)  # issue 15
app.include_router(declarations.router)  # issue 15
app.include_router(followup_routes.router)  # issue 14
app.include_router(citizen_routes.router)  # issue 14
