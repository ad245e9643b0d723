"""Row counts for the pytest benches: ``scaled(n)`` is ``n × BENCH_SCALE``, never below a floor.

``BENCH_SCALE=10 python -m pytest bench`` runs the benches on ten times the rows; the
default (1) keeps a full run within a few minutes on a 2-core machine.
"""
from __future__ import annotations

import os

FLOOR = 1_000


def scale() -> float:
    value = os.environ.get("BENCH_SCALE", "1")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"BENCH_SCALE must be a number, got {value!r}") from None


def scaled(n: int, floor: int = FLOOR) -> int:
    return max(floor, int(n * scale()))
