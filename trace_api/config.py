"""Trace API settings (env prefix ``TRACE_``); shared infrastructure comes from ``TRUYVET_``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from truyvet.settings import CommonSettings


class TraceSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="TRACE_", extra="ignore", frozen=True)

    window_minutes: int = Field(60, ge=0, le=24 * 60)
    min_overlap_minutes: int = Field(0, ge=0, le=24 * 60)


@lru_cache(maxsize=1)
def get_settings() -> TraceSettings:
    return TraceSettings()
