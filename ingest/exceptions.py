"""Errors of the ingest edge."""

from truyvet.exceptions import TruyvetError


class IngestError(TruyvetError):
    pass


class KafkaUnavailable(IngestError):
    """Kafka did not confirm a write in time; nothing may be acknowledged."""
