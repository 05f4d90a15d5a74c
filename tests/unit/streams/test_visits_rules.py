"""The contract's visit rules on small hand-made cases (streams/visits.py)."""

from streams.visits import Scan, person_visits

H = 3600
M = 60


def visits(*scans: Scan, stay: int = 60 * M) -> list[tuple[str, int, int]]:
    result = person_visits(scans, stay_for=lambda _: stay, max_stay=12 * H, dedup_window=10 * M)
    return sorted((v.venue_id, v.t_in, v.t_out) for v in result.values())


def test_in_without_out_lasts_the_default_stay() -> None:
    assert visits(Scan(0, "in", "A", "1")) == [("A", 0, 60 * M)]


def test_out_within_max_stay_closes_the_visit() -> None:
    assert visits(Scan(0, "in", "A", "1"), Scan(3 * H, "out", "A", "2")) == [("A", 0, 3 * H)]


def test_out_beyond_max_stay_is_an_orphan() -> None:
    got = visits(Scan(0, "in", "A", "1"), Scan(13 * H, "out", "A", "2"))
    assert got == [("A", 0, 60 * M), ("A", 13 * H - 60 * M, 13 * H)]


def test_next_in_elsewhere_cuts_the_visit() -> None:
    got = visits(Scan(0, "in", "A", "1"), Scan(20 * M, "in", "B", "2"), Scan(40 * M, "out", "A", "3"))
    # A is cut at 20 min; the out at 40 min finds no open visit at A and becomes an orphan.
    assert got == [("A", 40 * M - 60 * M, 40 * M), ("A", 0, 20 * M), ("B", 20 * M, 80 * M)]


def test_orphan_out_uses_the_default_stay() -> None:
    assert visits(Scan(5 * H, "out", "A", "1"), stay=30 * M) == [("A", 5 * H - 30 * M, 5 * H)]


def test_near_duplicate_within_ten_minutes_is_dropped_but_not_after() -> None:
    assert visits(Scan(0, "in", "A", "1"), Scan(10 * M, "in", "A", "2")) == [("A", 0, 60 * M)]
    assert len(visits(Scan(0, "in", "A", "1"), Scan(10 * M + 1, "in", "A", "2"))) == 2


def test_result_does_not_depend_on_arrival_order() -> None:
    scans = [Scan(0, "in", "A", "1"), Scan(30 * M, "out", "A", "2"), Scan(2 * H, "in", "B", "3"),
             Scan(2 * H + 5 * M, "in", "B", "4"), Scan(9 * H, "out", "C", "5")]
    assert visits(*scans) == visits(*reversed(scans))
