"""Ingest settings (env prefix ``INGEST_``); shared infrastructure comes from ``TRUYVET_``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from truyvet.settings import CommonSettings


class IngestSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    max_batch: int = Field(10_000, ge=1)
    max_future_seconds: int = Field(300, ge=0)
    produce_timeout_seconds: float = Field(15.0, gt=0)
    retry_after_seconds: int = Field(5, ge=1)


@lru_cache(maxsize=1)
def get_settings() -> IngestSettings:
    return IngestSettings()
