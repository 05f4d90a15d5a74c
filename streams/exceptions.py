"""Errors of the stream worker."""

from truyvet.exceptions import TruyvetError


class StreamsError(TruyvetError):
    pass


class SinkBackpressure(StreamsError):
    """ClickHouse refused or could not take a batch; consumption pauses until it can."""


class StateRecoveryError(StreamsError):
    """A changelog record the store cannot read: the worker stops, naming topic, partition and offset."""
