"""The contact rule (docs/tracing.md, "Contacts"), defined once for the trace API and the worker's matcher.

Visit ``b`` at a venue is an exposure to visit ``a`` of the case (or of a generation-1 contact) at the
same venue when ``b.t_in <= a.t_out + W`` and ``b.t_out >= a.t_in - W``, and the widened case visit
``[a.t_in - W, a.t_out + W]`` meets ``[b.t_in, b.t_out]`` for at least ``M`` seconds. Intervals are
closed; times are integer epoch seconds. The overlap reported is that of the visits themselves.

``trace_api.tracing.matches`` inlines :func:`meets` in its inner loop (most of a large trace's Python
time); ``tests/unit/trace_api/test_contact_rule.py`` holds it equal to this definition pair by pair.
"""

from __future__ import annotations


def meets(a_in: int, a_out: int, b_in: int, b_out: int, *, window: int, min_overlap: int) -> bool:
    """Whether visit ``b`` is an exposure to visit ``a`` (same venue assumed) under W and M in seconds."""
    if b_in > a_out + window or b_out < a_in - window:
        return False
    return min(a_out + window, b_out) - max(a_in - window, b_in) >= min_overlap


def overlap_seconds(a_in: int, a_out: int, b_in: int, b_out: int) -> int:
    """Length of ``[a_in, a_out] ∩ [b_in, b_out]`` (0 when they only meet within the window)."""
    return max(0, min(a_out, b_out) - max(a_in, b_in))
