"""Alerting settings (env prefix ``ALERTS_``) and the count of alerts raised."""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from truyvet.settings import CommonSettings

RAISED = Counter(
    "truyvet_alerts_raised_total", "Alerts raised (source: case registration or late visit)", ["source"]
)


class AlertSettings(CommonSettings):
    """Alerting (env prefix ``ALERTS_``): tracing depth, follow-up, webhook delivery policy."""

    model_config = SettingsConfigDict(env_prefix="ALERTS_", extra="ignore", frozen=True)

    depth: int = Field(2, ge=1, le=2)
    # Exposure windows stay active this long after the case's infectious_to (late scans still alert).
    followup_days: int = Field(14, ge=1, le=366)
    dispatcher_group: str = "truyvet-alert-dispatcher"
    max_attempts: int = Field(12, ge=1)
    backoff_base_seconds: float = Field(0.5, gt=0)
    backoff_cap_seconds: float = Field(30.0, gt=0)
    request_timeout_seconds: float = Field(10.0, gt=0)
    max_in_flight: int = Field(2000, ge=1)
    max_connections: int = Field(32, ge=1)  # concurrent webhook requests of one dispatcher
    webhook_cache_seconds: float = Field(2.0, ge=0)
    # Webhooks to loopback, link-local and private addresses are refused unless this is set (a receiver on
    # a trusted network; the tests' local receivers). streams/alerting/targets.py.
    webhook_allow_private: bool = False
    # Fernet key that encrypts the webhooks' signing secrets in ClickHouse; unset: the installation's key
    # file <data_dir>/secrets/webhook.key (created by the first `truyvet webhook set`).
    webhook_key: SecretStr | None = None


@lru_cache(maxsize=1)
def get_settings() -> AlertSettings:
    return AlertSettings()
