"""Truy Vết shared package: events, ClickHouse schema, settings base, local stack and CLI."""

__version__ = "0.1.0"
