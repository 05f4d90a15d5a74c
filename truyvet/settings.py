"""Settings shared by every service: where Kafka and ClickHouse are, topic names, secrets.

Each service subclasses :class:`CommonSettings` in its own ``config.py`` with its own env prefix;
the shared fields keep the ``TRUYVET_`` prefix so one environment drives the whole stack.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from truyvet.exceptions import ConfigError

PLACEHOLDER_SECRET = "change-me-in-production"  # noqa: S105 - the value we refuse outside development
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILE_ENV = "profile.env"


class CommonSettings(BaseSettings):
    """Infrastructure every component talks to. Env prefix ``TRUYVET_``."""

    model_config = SettingsConfigDict(env_prefix="TRUYVET_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = PROJECT_ROOT / ".local"
    bind_host: str = "127.0.0.1"

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    topic_prefix: str = ""
    scans_partitions: int = 8

    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 9000
    clickhouse_http_port: int = 8123
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "truyvet"

    # Cluster profile (issue 12, docs/operations.md "Cluster profile"): ``cluster`` makes the schema
    # replicated + Distributed (ON CLUSTER ``clickhouse_cluster``) and topics replicated 3 times;
    # ``kafka_bootstrap`` then lists every broker and ``clickhouse_alt_hosts`` the other servers
    # (``host:port,host:port``) that clients fall back to when the first one is down.
    profile: Literal["single", "cluster"] = "single"
    clickhouse_alt_hosts: str = ""
    clickhouse_cluster: str = "truyvet"
    zookeeper_port: int = 2181

    ingest_port: int = 8001
    trace_port: int = 8002
    worker_metrics_port: int = 8003
    # The alert dispatcher's metrics port; unset: worker_metrics_port + 64 (8067), so a stack started on
    # its own ports (tests) gets its own dispatcher port too, clear of the workers' (8003, 8004, ...).
    dispatcher_port: int | None = Field(None, validation_alias=AliasChoices("ALERTS_DISPATCHER_PORT",
                                                                            "TRUYVET_DISPATCHER_PORT"))

    # Keyed pseudonyms of national ID numbers and the token hashes depend on this.
    pseudonym_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    retention_days: int = Field(28, ge=1, le=366)
    max_stay_minutes: int = Field(12 * 60, ge=1)
    default_stay_minutes: int = Field(60, ge=1)
    dedup_window_minutes: int = Field(10, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """A service's own prefix (``INGEST_``...) first, then the shared ``TRUYVET_`` for every field.

        Subclasses change ``env_prefix``; without this source they would stop reading the shared
        variables (Kafka address, database, topic prefix) that one environment sets for all services.
        """
        shared = EnvSettingsSource(settings_cls, env_prefix="TRUYVET_")
        # ``truyvet up --cluster`` writes the profile's addresses to ``<data dir>/profile.env`` so
        # every later command and service finds the cluster; the environment still wins.
        data_dir = Path(os.environ.get("TRUYVET_DATA_DIR") or PROJECT_ROOT / ".local")
        profile = DotEnvSettingsSource(settings_cls, env_file=data_dir / PROFILE_ENV, env_prefix="TRUYVET_")
        return (init_settings, env_settings, shared, profile, dotenv_settings, file_secret_settings)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> CommonSettings:
        if self.environment == "production" and self.pseudonym_key.get_secret_value() == PLACEHOLDER_SECRET:
            raise ConfigError("TRUYVET_PSEUDONYM_KEY is the placeholder; set a real secret in production")
        return self

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic (``scans``, ``scans-dlq``, ``venues``...)."""
        return f"{self.topic_prefix}{name}"

    @property
    def clustered(self) -> bool:
        return self.profile == "cluster"

    @property
    def replication_factor(self) -> int:
        """Replicas of every topic: 3 on the cluster (``min.insync.replicas`` 2), 1 on one broker."""
        return 3 if self.clustered else 1

    @property
    def dispatcher_metrics_port(self) -> int:
        return self.dispatcher_port or self.worker_metrics_port + 64

    @cached_property
    def ingest_url(self) -> str:
        return f"http://{self.bind_host}:{self.ingest_port}"

    @cached_property
    def trace_url(self) -> str:
        return f"http://{self.bind_host}:{self.trace_port}"


def common_settings() -> CommonSettings:
    """Settings from the environment (a fresh read: tests change the environment)."""
    return CommonSettings()
