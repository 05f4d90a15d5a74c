"""The worker's own intake cursors (streams/offsets.py): what is processed, skipped and committed."""

from __future__ import annotations

from faust.types import TP

from streams.offsets import Cursors, Decision

A = TP("scans", 0)
B = TP("scans", 1)


def started(**offsets: int) -> Cursors:
    cursors = Cursors(gap_patience=0.0)
    cursors.reset(1)
    for name, offset in offsets.items():
        cursors.start({"a": A, "b": B}[name], offset)
    return cursors


def test_in_order_records_are_processed_and_their_cursor_committed() -> None:
    cursors = started(a=10)
    batch = dict(cursors.next)
    assert [cursors.decide(batch, A, o) for o in (10, 11, 12)] == [Decision.PROCESS] * 3
    assert cursors.next[A] == 10, "the cursor moves only when the batch is written"
    assert cursors.advance(batch) == {A: 13}
    cursors.committed_to({A: 13})
    assert cursors.advance(dict(cursors.next)) == {}, "nothing new to commit"


def test_second_copies_after_a_seek_back_are_skipped() -> None:
    cursors = started(a=10)
    batch = dict(cursors.next)
    for o in (10, 11, 12, 10, 11, 12, 13):  # 10-12 delivered twice (fetched before faust sought back)
        cursors.decide(batch, A, o)
    assert batch[A] == 14
    cursors.advance(batch)
    second = dict(cursors.next)
    assert cursors.decide(second, A, 10) is Decision.SECOND_COPY


def test_a_gap_is_not_committed_past_and_is_sought_back() -> None:
    cursors = started(a=10)
    batch = dict(cursors.next)
    assert cursors.decide(batch, A, 10) is Decision.PROCESS
    assert cursors.decide(batch, A, 12) is Decision.GAP, "11 never came"
    assert cursors.decide(batch, A, 13) is Decision.GAP
    assert cursors.advance(batch) == {A: 11}
    assert cursors.stale_gaps() == {A: 11}
    batch = dict(cursors.next)
    assert [cursors.decide(batch, A, o) for o in (11, 12, 13)] == [Decision.PROCESS] * 3
    cursors.advance(batch)
    assert A not in cursors.gap_since


def test_partitions_not_held_are_not_processed_and_a_new_generation_starts_over() -> None:
    cursors = started(a=0)
    batch = dict(cursors.next)
    assert cursors.decide(batch, B, 0) is Decision.NOT_OURS
    cursors.reset(2)
    assert cursors.missing([A, B]) == {A, B}


def test_record_by_record_the_cursor_moves_only_when_a_record_is_done() -> None:
    cursors = started(a=5)
    assert cursors.decide(dict(cursors.next), A, 5) is Decision.PROCESS
    assert cursors.next[A] == 5, "taking a record moves nothing"
    cursors.done(A, 5)
    assert cursors.next[A] == 6 and cursors.advance(dict(cursors.next)) == {A: 6}
