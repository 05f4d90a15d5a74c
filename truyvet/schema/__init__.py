"""The ClickHouse schema: versioned migrations and the one client wrapper every service uses."""

from truyvet.schema.db import ChdbDatabase, Database, DriverDatabase, connect
from truyvet.schema.migrate import apply_migrations, migrations

__all__ = ["ChdbDatabase", "Database", "DriverDatabase", "apply_migrations", "connect", "migrations"]
