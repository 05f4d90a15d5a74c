"""``matches`` inlines the exposure rule for speed: it must agree with ``exposure`` pair by pair."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trace_api.tracing import exposure, matches
from truyvet.events import Visit


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), window=st.sampled_from([0, 60, 3600]), min_overlap=st.sampled_from([0, 1, 600]))
def test_matches_equals_exposure_on_every_pair(seed: int, window: int, min_overlap: int) -> None:
    rnd = random.Random(seed)

    def visit(i: int, person: str) -> Visit:
        t_in = rnd.randint(0, 6 * 3600)
        return Visit(f"{person}-{i}", person, rnd.choice("ab"), t_in, t_in + rnd.randint(0, 3 * 3600))

    sources = [visit(i, "case") for i in range(rnd.randint(1, 6))]
    candidates = [visit(i, f"p{rnd.randint(0, 9)}") for i in range(rnd.randint(0, 40))]
    got = {(e.case_visit, e.contact_visit, e.overlap_seconds)
           for e in matches(sources, candidates, exclude={"case"}, window=window, min_overlap=min_overlap,
                            max_visit=3 * 3600)}
    want = set()
    for b in {(c.person_id, c.visit_id): c for c in reversed(candidates)}.values():
        for a in sources:
            hit = exposure(a, b, window=window, min_overlap=min_overlap)
            if hit is not None:
                want.add((hit.case_visit, hit.contact_visit, hit.overlap_seconds))
    assert got == want
