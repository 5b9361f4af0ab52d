""""Sequential" means one core: inside ``pinned()`` (sequential fits, every unit of
search work in a worker) joblib runs sequentially and native thread pools (OpenMP, BLAS)
are limited to one thread, as threadpoolctl sees them."""

import threading

import numpy as np
import pytest
from joblib.parallel import get_active_backend
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: F401 (loads OpenMP)
from threadpoolctl import threadpool_info, threadpool_limits

from distsk import DistributedEstimator
from distsk._engines.base import pinned


def pools():
    return {(p["internal_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}


def test_native_thread_pools_use_one_thread_inside_pinned():
    with threadpool_limits(limits=2):
        before = pools()
        assert {"openmp", "openblas"} & {api for api, _ in before} and set(before.values()) == {2}
        with pinned():
            assert set(pools().values()) == {1}
            assert type(get_active_backend()[0]).__name__ == "SequentialBackend"
        assert pools() == before  # restored on the way out


def test_concurrent_pinned_blocks_share_one_limit():
    # In a fresh process, as a Dask worker's threads are: once a pinned block has run in
    # a process's main thread, OpenBLAS 0.3.31 here reads 2 threads from the main thread
    # while two other threads' blocks hold the limit (found in a random test order;
    # tests/test_pinned.py's other tests run pinned blocks in the main thread).
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", "from tests.test_pinned import _concurrent_blocks; "
                               "_concurrent_blocks()"],
        cwd=root, capture_output=True, text=True, timeout=120)
    if done.returncode == 3:
        pytest.skip("needs a machine with 2 or more cores (the pools' default is 1)")
    assert done.returncode == 0, done.stdout + done.stderr


def _concurrent_blocks():
    # Worker threads, as in a Dask worker; the pools' defaults here (no limit set in
    # this thread: OpenBLAS then ignores a limit set in another thread) are the cores.
    default = set(pools().values())
    if default == {1}:
        raise SystemExit(3)
    entered, release = threading.Barrier(2), threading.Event()
    seen = {}

    def task(name, wait):
        with pinned():
            entered.wait(timeout=30)
            seen[name] = set(pools().values())
            if wait:
                release.wait(timeout=30)
            seen[name + " later"] = set(pools().values())

    def blas():
        return {n for (api, _), n in pools().items() if api != "openmp"}

    early = threading.Thread(target=task, args=("early", False))
    late = threading.Thread(target=task, args=("late", True))
    early.start(), late.start()
    try:
        early.join(timeout=30)
        # BLAS limits are process-wide: still one thread while the late block runs
        # (OpenMP's belong to each thread, and this one is not pinned).
        assert blas() == {1}
    finally:
        release.set()
        late.join(timeout=30)
    assert set(pools().values()) == default
    assert set(map(frozenset, seen.values())) == {frozenset({1})}, seen


class ThreadsSeen(BaseEstimator):
    """Records the native thread pools' sizes while it fits."""

    def fit(self, X, y=None):
        self.threads_ = sorted(set(pools().values()))
        return self


def test_a_sequential_fit_runs_on_one_core():
    X = np.zeros((10, 2))
    with threadpool_limits(limits=2):
        fitted = DistributedEstimator(ThreadsSeen(), backend="sequential").fit(X)
        assert fitted.threads_ == [1]
        plain = ThreadsSeen().fit(X)
        assert plain.threads_ == [2]  # as the user had it, outside distsk
