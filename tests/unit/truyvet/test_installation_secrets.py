"""Per-installation secrets (issue 13, item 1): made once under ``<data_dir>/secrets`` (0700/0600), read
by settings (the environment still wins), and the public placeholder refused in every environment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from truyvet import secretstore
from truyvet.exceptions import ConfigError
from truyvet.settings import PLACEHOLDER_SECRET, CommonSettings
from truyvet.stack.clickhouse_users import render_users_xml


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
@pytest.mark.parametrize("field", ["pseudonym_key", "clickhouse_password", "kafka_password"])
def test_the_public_placeholder_is_refused_in_every_environment(environment: str, field: str) -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        CommonSettings(environment=environment, **{field: PLACEHOLDER_SECRET})


def test_secrets_are_made_once_private_and_read_by_settings(tmp_path: Path) -> None:
    data = tmp_path / "local"
    data.mkdir(mode=0o755)
    old_keys = data / "keys" / "qr"
    old_keys.mkdir(parents=True)
    (old_keys / "keyring.json").write_text("{}")
    secretstore.ensure_installation_secrets(data)
    folder = secretstore.secrets_dir(data)
    assert _mode(data) == 0o700 and _mode(folder) == 0o700
    files = [p for p in folder.iterdir() if p.is_file()]
    names = {p.name for p in files}
    assert {"pseudonym_key", "clickhouse-admin.password", "clickhouse-retention.password",
            "kafka-device.password", "kafka-worker.password"} <= names
    assert all(_mode(p) == 0o600 for p in files)
    values = {p.name: p.read_text() for p in files}
    assert len(set(values.values())) == len(values)  # each secret its own random value
    assert all(len(v.strip()) >= 40 for v in values.values())
    # the QR keys of an older install moved into the secrets folder (printed codes stay valid)
    assert (secretstore.qr_keys_dir(data) / "keyring.json").exists() and not old_keys.exists()
    assert _mode(secretstore.qr_keys_dir(data)) == 0o700

    secretstore.ensure_installation_secrets(data)  # a second `truyvet up` keeps them
    assert {p.name: p.read_text() for p in folder.iterdir() if p.is_file()} == values

    settings = CommonSettings(data_dir=data, pseudonym_key=None, clickhouse_user="worker", kafka_username="device",
                              clickhouse_password=None, kafka_password=None)
    assert settings.pseudonym_key_bytes() == values["pseudonym_key"].strip().encode()
    assert settings.clickhouse_secret() == values["clickhouse-worker.password"].strip()
    assert settings.kafka_secret() == values["kafka-device.password"].strip()
    assert settings.as_account(clickhouse="admin").clickhouse_secret() == values["clickhouse-admin.password"].strip()
    # the environment (here: init) still overrides the file
    assert CommonSettings(data_dir=data, pseudonym_key="from-env").pseudonym_key_bytes() == b"from-env"


def test_a_missing_secret_is_a_clear_error(tmp_path: Path) -> None:
    settings = CommonSettings(data_dir=tmp_path, pseudonym_key=None, clickhouse_password=None)
    with pytest.raises(ConfigError, match="truyvet up"):
        settings.pseudonym_key_bytes()
    with pytest.raises(ConfigError, match="ClickHouse account 'admin'"):
        settings.clickhouse_secret()


def test_users_xml_has_no_default_user_no_clear_password_and_keeps_retention_out_of_audit() -> None:
    passwords = {a: f"secret-of-{a}" for a in secretstore.CLICKHOUSE_ACCOUNTS}
    xml = render_users_xml(passwords, limited_databases=["truyvet", "truyvet_audit", "other"])
    users = xml.split("<users>")[1].split("</users>")[0]
    assert "<default>" not in users and "secret-of" not in xml
    retention = users.split("<retention>")[1].split("</retention>")[0]
    assert "<database>truyvet</database>" in retention and "<database>other</database>" in retention
    assert "_audit" not in retention and "<profile>maintenance</profile>" in retention
    assert "<database>truyvet_personal</database>" in retention and "<database>other_personal</database>" in retention
    for account in ("worker", "dispatcher"):  # the data databases alone: no audit, no personal stores
        listed = users.split(f"<{account}>")[1].split(f"</{account}>")[0]
        assert listed.count("<database>") == 2 and "<database>truyvet</database>" in listed, listed
    for account in ("ingest", "trace"):  # every database: they write and read the personal stores and the audit
        assert "allow_databases" not in users.split(f"<{account}>")[1].split(f"</{account}>")[0]
    for account in ("ingest", "worker", "trace", "dispatcher"):
        assert "<profile>service</profile>" in users.split(f"<{account}>")[1].split(f"</{account}>")[0]
    assert "<allow_ddl>0</allow_ddl>" in xml.split("<service>")[1].split("</service>")[0]
