"""The probe instruments: a fit timed in this process, as a worker would run it, and its
peak memory; the subsample a search probes first. What they measure goes to the planner
as arguments (``plan_search``'s ``probe_*``); nothing here is kept.
"""

from __future__ import annotations

import contextlib
import threading
import time

__all__ = [
    "PROBE_SUBSAMPLE", "PROBE_MIN_ROWS", "PROBE_ERROR", "subsample", "timed_probe",
    "plan_from_subsample", "traced_peak",
]

#: A search's probe first fits on 1/PROBE_SUBSAMPLE of the rows (when there are at least
#: PROBE_SUBSAMPLE x PROBE_MIN_ROWS): its time x PROBE_SUBSAMPLE decides when the plan is
#: the same with that time x each factor of PROBE_ERROR; otherwise a full probe decides.
PROBE_SUBSAMPLE = 8
PROBE_MIN_ROWS = 200
PROBE_ERROR = (1 / 3, 3.0)


def subsample(estimator, X, y, every: int):
    """1/``every`` of the rows of ``X`` and ``y`` (stratified for classifiers), or None
    when there are too few rows (or the rows cannot be counted) for a scaled probe."""
    from sklearn.base import is_classifier
    from sklearn.utils import resample

    try:
        n = X.shape[0]
    except (AttributeError, IndexError, TypeError):
        return None
    if every <= 1 or n < every * PROBE_MIN_ROWS:
        return None
    stratify = y if (y is not None and is_classifier(estimator)) else None
    try:
        out = resample(X, y, replace=False, n_samples=n // every, random_state=0,
                       stratify=stratify) if y is not None else (resample(
                           X, replace=False, n_samples=n // every, random_state=0), None)
    except (ValueError, TypeError):  # a class too rare to stratify, odd input: no subsample
        return None
    return tuple(out)


def timed_probe(func):
    """``func()`` run here as on a worker (one thread, joblib loops sequential), timed:
    its value, and (seconds, peak memory growth, CPU seconds) for the cost model."""
    from .._units.worker import pinned

    with pinned(), traced_peak() as peak:
        start, cpu = time.perf_counter(), time.process_time()
        value = func()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return value, (seconds, peak(), cpu)


def plan_from_subsample(plan_for, probe_part):
    """``(plan, probe)`` from a probe on 1/PROBE_SUBSAMPLE of the rows, scaled, when that
    plan is the same for a fit PROBE_ERROR times faster or slower; else None (the
    caller then probes on all rows: a probe is work whose result no one keeps).

    ``probe_part()`` fits on the part and returns its (seconds, bytes, CPU seconds), or
    None when there is no part or its fit failed; ``plan_for(seconds, nbytes, cpu,
    rows)`` plans for a probe of that cost on ``rows`` of the data. One sequence for
    DistributedSearchCV and the joblib backend.
    """
    measured = probe_part()
    if measured is None or measured[0] is None:
        return None
    k = PROBE_SUBSAMPLE
    seconds, nbytes, cpu = (None if v is None else v * k for v in measured)
    plan = plan_for(seconds, nbytes, cpu, 1 / k)
    if all(plan_for(seconds * f, nbytes, None if cpu is None else cpu * f, 1 / k).executor
           == plan.executor for f in PROBE_ERROR):
        return plan, (seconds, nbytes, cpu)
    return None


@contextlib.contextmanager
def traced_peak(interval: float = 0.005):
    """Peak growth of this process's resident memory inside the block: yields a function
    returning it in bytes.

    A thread samples the resident set size every ``interval`` seconds (about 20 us a
    sample) and at the end; the fit itself is not slowed down (``tracemalloc`` made a
    forest's fit 5-8x slower here). Allocations shorter than ``interval`` may be missed;
    the cost model adds the fit's copy of its rows anyway.
    """
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample, name="distsk-probe-memory", daemon=True)
    thread.start()
    result = [None]
    try:
        yield lambda: result[0]
    finally:
        done.set()
        thread.join()
        result[0] = max(0, max(peak[0], proc.memory_info().rss) - base)
