"""Stream worker settings (env prefix ``STREAMS_``); shared infrastructure comes from ``TRUYVET_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from truyvet.events import Category
from truyvet.secretstore import qr_keys_dir
from truyvet.settings import CommonSettings
from truyvet.stack.kafka_accounts import APP_ID_PREFIX


class StreamsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMS_", extra="ignore", frozen=True)

    app_id: str = "truyvet-streams"
    # Default stay per category when the venue sets none (minutes); others use default_stay_minutes.
    category_stay_minutes: dict[Category, int] = Field(
        default_factory=lambda: {
            Category.food_drink: 60, Category.bar: 120, Category.karaoke: 150, Category.gym: 90,
            Category.office: 480, Category.factory: 480, Category.school: 360, Category.meeting: 180,
            Category.health_facility: 120, Category.market_shop: 30, Category.mall_supermarket: 60,
            Category.bus_station: 30, Category.public_transport: 60, Category.wedding: 180,
            Category.funeral: 120,
        }
    )
    # Scans of one person kept in the worker's state, relative to that person's newest scan.
    state_horizon_hours: int = Field(72, ge=1)
    # How often a worker forgets the state of people whose newest scan is older than the horizon.
    state_sweep_seconds: float = Field(600.0, gt=0)
    sink_batch_size: int = Field(20_000, ge=1)
    sink_flush_seconds: float = Field(0.5, gt=0)
    sink_max_backoff_seconds: float = Field(30.0, gt=0)
    retention_check_seconds: float = Field(3600.0, gt=0)
    # Retention of personal and case records (issue 14; streams/retention.py, README "Retention"), in days.
    retention_person_details_days: int = Field(28, ge=1)  # since the details were last read from a card
    retention_phones_days: int = Field(60, ge=1)  # since the phone was given or changed
    retention_citizens_days: int = Field(365, ge=1)  # since the app registered (it registers again)
    retention_cases_days: int = Field(90, ge=1)  # since the case's infectious_to
    retention_alerts_days: int = Field(90, ge=1)  # since the alert was raised
    retention_follow_ups_days: int = Field(90, ge=1)  # since the record was made
    retention_audit_days: int = Field(730, ge=31)  # whole months older than this are dropped
    # A worker that died (kill -9) holds its partitions until its session expires: keep it short.
    session_timeout_seconds: float = Field(10.0, ge=6)
    # How often the matcher's stores drop windows and remembered alerts past their follow-up.
    matching_sweep_seconds: float = Field(600.0, gt=0)
    # A consumer with records waiting and no commit for this long is reported stalled (/healthz 503).
    stall_seconds: float = Field(120.0, gt=0)

    # Where ingest keeps the QR signing keys (STREAMS_QR_KEYS_DIR, else ingest's own INGEST_QR_KEYS_DIR, else
    # the secrets folder's qr-keys): the worker reads their public halves to check printed personal cards sent
    # straight to Kafka (issue 15).
    qr_keys_dir: Path | None = Field(None, validation_alias=AliasChoices("streams_qr_keys_dir", "ingest_qr_keys_dir"))

    @property
    def card_keys_dir(self) -> Path:
        return self.qr_keys_dir or qr_keys_dir(self.data_dir)

    @field_validator("app_id")
    @classmethod
    def _app_id_in_the_workers_acls(cls, value: str) -> str:
        # The worker's Kafka account may use groups and changelogs named so (truyvet/stack/kafka_accounts.py).
        if not value.startswith(APP_ID_PREFIX):
            raise ValueError(f"STREAMS_APP_ID must start with {APP_ID_PREFIX!r} (the worker's Kafka ACLs)")
        return value

    def group(self, intake: str) -> str:
        """The consumer group of one of the worker's intakes (``scans``, ``matching``)."""
        return f"{self.app_id}-{intake}"

    def state_topic(self, store: str) -> str:
        """The compacted changelog topic of one of the worker's stores (co-partitioned with its intake).

        The name is the one faust gave its tables' changelogs, so an installation's state carries over.
        """
        return f"{self.app_id}-{self.topic_prefix}{store}-changelog"


@lru_cache(maxsize=1)
def get_settings() -> StreamsSettings:
    return StreamsSettings()
