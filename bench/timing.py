"""Wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` calls of `action`, after one untimed warm-up call."""
    action()
    return statistics.median(timed(action) for _ in range(repeats))
