"""This installation's own secrets under ``<data_dir>/secrets/`` (folder 0700, files 0600).

Made once, at the first ``truyvet up`` (and the test session's infra start): the CCCD pseudonym key, a
password per ClickHouse account and per Kafka account. The venue QR signing keys live in
``secrets/qr-keys/`` (ingest's key ring makes them there). Settings read these files; an environment
variable of the same setting still wins (SECURITY.md, "Accounts and secrets").
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

SECRETS_DIR = "secrets"
PSEUDONYM_KEY = "pseudonym_key"

# The ClickHouse accounts and what each is for (truyvet/stack/clickhouse_users.py gives their rights).
CLICKHOUSE_ACCOUNTS = ("admin", "ingest", "worker", "retention", "trace", "dispatcher")
# The Kafka accounts made at install; ``truyvet kafka-config --role`` may add more (e.g. ``device``).
KAFKA_ACCOUNTS = ("admin", "ingest", "worker", "trace", "dispatcher", "device")


def secrets_dir(data_dir: Path) -> Path:
    return data_dir / SECRETS_DIR


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders made inside are readable by their owner only (0600 / 0700)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_private_dir(path: Path) -> Path:
    """``mkdir -p`` then ``chmod 700`` (also when it existed: an older install made it 0755)."""
    with private_umask():
        path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _file(data_dir: Path, name: str) -> Path:
    return secrets_dir(data_dir) / name


def clickhouse_password_name(account: str) -> str:
    return f"clickhouse-{account}.password"


def kafka_password_name(account: str) -> str:
    return f"kafka-{account}.password"


def read_secret(data_dir: Path, name: str) -> str | None:
    """The secret's text, or ``None`` when this installation has not made it (yet)."""
    try:
        return _file(data_dir, name).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def ensure_secret(data_dir: Path, name: str) -> str:
    """The secret, made now (random, 256 bits, URL-safe text) if it does not exist; files are 0600."""
    existing = read_secret(data_dir, name)
    if existing:
        return existing
    make_private_dir(secrets_dir(data_dir))
    path = _file(data_dir, name)
    value = secrets.token_urlsafe(32)
    with private_umask():
        # O_EXCL: two processes making the same secret at once keep the first one's.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return read_secret(data_dir, name) or value
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
    return value


def ensure_installation_secrets(data_dir: Path) -> None:
    """Every secret of the installation exists (the first ``truyvet up`` makes them)."""
    make_private_dir(data_dir)
    ensure_secret(data_dir, PSEUDONYM_KEY)
    for account in CLICKHOUSE_ACCOUNTS:
        ensure_secret(data_dir, clickhouse_password_name(account))
    for account in KAFKA_ACCOUNTS:
        ensure_secret(data_dir, kafka_password_name(account))
    migrate_qr_keys(data_dir)


def qr_keys_dir(data_dir: Path) -> Path:
    return secrets_dir(data_dir) / "qr-keys"


def migrate_qr_keys(data_dir: Path) -> None:
    """Installs before the secrets folder kept the QR keys in ``keys/qr``: move them (printed QR codes
    stay valid), and make the folder private."""
    old, new = data_dir / "keys" / "qr", qr_keys_dir(data_dir)
    if old.is_dir() and not new.exists():
        make_private_dir(new.parent)
        old.rename(new)
    make_private_dir(new)


def restrict_tree(path: Path) -> None:
    """Take group and other permissions off everything under ``path`` (an older install's files)."""
    if not path.exists():
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            target = Path(root) / name
            with contextlib.suppress(FileNotFoundError, PermissionError):
                mode = target.lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    target.chmod(stat.S_IMODE(mode) & 0o700)
    path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o700)
