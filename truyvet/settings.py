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

from truyvet import secretstore
from truyvet.exceptions import ConfigError

PLACEHOLDER_SECRET = "change-me-in-production"  # noqa: S105 - a published value, refused in every environment
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
    # Each service subclass names its own account (ingest, worker, trace, dispatcher); the CLI and
    # migrations use ``admin``. Unset password: this installation's file in ``<data_dir>/secrets/``.
    clickhouse_user: str = "admin"
    clickhouse_password: SecretStr | None = None
    # Kafka clients authenticate with SASL/SCRAM-SHA-512 (truyvet/kafka_clients.py builds their options).
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "PLAINTEXT"] = "SASL_PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = "admin"
    kafka_password: SecretStr | None = None
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

    # Keyed pseudonyms of national ID numbers depend on this. Unset: the installation's own key
    # (``<data_dir>/secrets/pseudonym_key``, made by the first ``truyvet up``).
    pseudonym_key: SecretStr | None = None
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
        for name in ("pseudonym_key", "clickhouse_password", "kafka_password"):
            value = getattr(self, name)
            if value is not None and value.get_secret_value().strip() in (PLACEHOLDER_SECRET, "change-me"):
                raise ConfigError(f"TRUYVET_{name.upper()} is the public placeholder; unset it to use this "
                                  "installation's own secret (made by `truyvet up`) or set a real one")
        return self

    # -- secrets (SECURITY.md, "Accounts and secrets") ----------------------------------------------
    def _secret(self, explicit: SecretStr | None, file_name: str, what: str) -> str:
        if explicit is not None:
            return explicit.get_secret_value()
        value = secretstore.read_secret(self.data_dir, file_name)
        if value is None:
            raise ConfigError(f"no {what}: this installation's secrets are made by the first `truyvet up` "
                              f"(in {secretstore.secrets_dir(self.data_dir)}); or set it in the environment")
        return value

    def pseudonym_key_bytes(self) -> bytes:
        """The key of the CCCD pseudonyms (HMAC), from the environment or this installation's file."""
        return self._secret(self.pseudonym_key, secretstore.PSEUDONYM_KEY, "pseudonym key").encode()

    def clickhouse_secret(self) -> str:
        """The password of :attr:`clickhouse_user`."""
        return self._secret(self.clickhouse_password, secretstore.clickhouse_password_name(self.clickhouse_user),
                            f"password for the ClickHouse account {self.clickhouse_user!r}")

    def kafka_secret(self) -> str:
        """The password of :attr:`kafka_username`."""
        return self._secret(self.kafka_password, secretstore.kafka_password_name(self.kafka_username),
                            f"password for the Kafka account {self.kafka_username!r}")

    def as_account(self, *, clickhouse: str | None = None, kafka: str | None = None) -> CommonSettings:
        """The same settings connecting as another account (its password from this installation)."""
        update: dict[str, object] = {}
        if clickhouse is not None:
            update |= {"clickhouse_user": clickhouse, "clickhouse_password": None}
        if kafka is not None:
            update |= {"kafka_username": kafka, "kafka_password": None}
        return self.model_copy(update=update)

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
