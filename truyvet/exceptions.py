"""The project's root exception; each service package derives its own from it."""

from __future__ import annotations

from typing import Any


class TruyvetError(Exception):
    """Root of every error this project raises on purpose.

    :param context: what the error is about (topic, partition, offset, scan_id, ClickHouse code...);
        rendered after the message so logs carry it.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = ", ".join(f"{k}={v!r}" for k, v in self.context.items())
        return f"{self.message} ({ctx})"


class ConfigError(TruyvetError):
    """Settings that cannot be used (placeholder secret outside development, bad path...)."""


class StackError(TruyvetError):
    """A local service failed to install, start or become ready."""
