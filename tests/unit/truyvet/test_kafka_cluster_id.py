"""The local Kafka's cluster id never reads as an option to the storage tool (a fresh install failed on it)."""

from __future__ import annotations

from truyvet.stack.kafka import _cluster_id


def test_cluster_ids_are_22_url_safe_characters_never_starting_with_a_dash() -> None:
    ids = [_cluster_id() for _ in range(5000)]  # about 78 would start with "-" by chance
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for i in ids)
    assert len(set(ids)) == len(ids)
