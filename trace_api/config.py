"""Trace API settings (env prefix ``TRACE_``); shared infrastructure comes from ``TRUYVET_``.

Default stays per category live with the worker that builds visits (``STREAMS_CATEGORY_STAY_MINUTES``);
the trace API holds the per-category exposure window and the longest a visit can last, which bounds
its primary-key range reads.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from truyvet.events import Category
from truyvet.settings import CommonSettings


class TraceSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="TRACE_", extra="ignore", frozen=True)

    # The national rule: same venue, within 60 minutes; a query's window_minutes overrides both.
    window_minutes: int = Field(60, ge=0, le=24 * 60)
    # Window per venue category where it differs from window_minutes, e.g. {"bar": 90} (JSON in env).
    category_window_minutes: dict[Category, int] = Field(default_factory=dict)
    min_overlap_minutes: int = Field(0, ge=0, le=24 * 60)
    # Upper bound of any visit's length: max stay (12 h) or an orphan out's default stay (<= 24 h).
    max_visit_minutes: int = Field(24 * 60, ge=1)
    audit_page_limit: int = Field(1000, ge=1)
    # Compliance (issue 15): a registered establishment with no scan in this many days up to the date is silent.
    compliance_silent_days: int = Field(3, ge=1, le=28)
    # POST /v1/citizens (no token) per client address: this many per second, bursting to citizens_burst.
    citizens_per_second: float = Field(1.0, gt=0)
    citizens_burst: int = Field(30, ge=1)


@lru_cache(maxsize=1)
def get_settings() -> TraceSettings:
    return TraceSettings()
