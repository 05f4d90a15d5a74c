"""Ingest settings (env prefix ``INGEST_``); shared infrastructure comes from ``TRUYVET_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from truyvet.secretstore import qr_keys_dir
from truyvet.settings import CommonSettings


class IngestSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)

    max_batch: int = Field(10_000, ge=1)
    # Largest request body (truyvet/guard.py): a full batch of 10,000 scans with signed venue codes and
    # card text is about 4 MiB.
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_future_seconds: int = Field(300, ge=0)
    # How long a request waits for Kafka before answering 503; clients must wait longer than this.
    produce_timeout_seconds: float = Field(10.0, gt=0)
    retry_after_seconds: int = Field(5, ge=1)
    # How long Kafka batches may wait for a partition leader (a broker restart) before they fail.
    kafka_request_timeout_seconds: float = Field(60.0, gt=0)
    # Venue QR signing keys (Ed25519); never in git. Default: <data_dir>/secrets/qr-keys.
    qr_keys_dir: Path | None = None
    qr_key_reload_seconds: float = Field(1.0, ge=0)
    # Per-token token bucket on scan intake, counted in scans (a batch of N costs N).
    rate_limit_scans_per_second: float = Field(2_000.0, gt=0)
    rate_limit_burst: int = Field(20_000, ge=1)
    # A citizen's own health declarations (their app's secret): at most this many a day each, so one
    # phone cannot flood its ward health station with declaration alerts (429 with Retry-After beyond).
    citizen_declarations_per_day: int = Field(10, ge=1)
    # scan_ids confirmed by Kafka that this process remembers, to answer a resend as a duplicate.
    recent_scan_ids: int = Field(500_000, ge=0)

    @property
    def keys_dir(self) -> Path:
        return self.qr_keys_dir or qr_keys_dir(self.data_dir)


@lru_cache(maxsize=1)
def get_settings() -> IngestSettings:
    return IngestSettings()
