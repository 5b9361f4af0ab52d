"""A search that logs each fit's start and end, run as its own process so that a test
can SIGKILL it mid-unit (tests/test_result_stream.py)."""

import argparse
import contextlib
import sqlite3
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from distsk import DistributedSearchCV

GRID = {"C": [float(c) for c in np.logspace(-3, 3, 20)]}
CV = 5
N_FITS = len(GRID["C"]) * CV


class SleepyLogistic(ClassifierMixin, BaseEstimator):
    """LogisticRegression that sleeps ``sleep`` s per fit and appends ``start`` and
    ``end`` lines to ``log``; with ``checkpoint``, the ``start`` line carries the number
    of results that file holds when the fit starts."""

    def __init__(self, C=1.0, sleep=0.1, log=None, checkpoint=None):
        self.C = C
        self.sleep = sleep
        self.log = log
        self.checkpoint = checkpoint

    def fit(self, X, y):
        self._write(f"start {self.C} {len(X)} {stored(self.checkpoint)}")
        time.sleep(self.sleep)
        # No joblib call of its own (tests.counting.logistic_without_joblib): the tests
        # collect this search's calls with the collector active around in-process fits.
        self.model_ = LogisticRegression(C=self.C, solver="liblinear").fit(X, y)
        self.classes_ = self.model_.classes_
        self._write(f"end {self.C} {len(X)}")
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def _write(self, line):
        if self.log:
            with open(self.log, "a") as f:
                f.write(line + "\n")


def stored(path) -> int:
    """Results in a checkpoint file (0 while it does not exist yet)."""
    if not path:
        return -1
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db, db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def lines(path, kind) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.split()[1:] for line in f if line.startswith(kind + " ")]
    except FileNotFoundError:
        return []


def data():
    return make_classification(n_samples=200, n_features=5, random_state=0)


def search(backend, address, checkpoint, log, sleep=0.1, probe=None):
    return DistributedSearchCV(
        SleepyLogistic(sleep=sleep, log=log, checkpoint=probe), GRID, cv=CV, n_jobs=2,
        refit=False, backend=backend, client=address, checkpoint=checkpoint,
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--backend")
    p.add_argument("--address", default=None)
    p.add_argument("--checkpoint")
    p.add_argument("--log")
    a = p.parse_args()
    # Through the imported module, not this ``__main__`` copy: the estimator's class is
    # part of the checkpoint key, which the test's own search must find again.
    from tests._stream_script import data as _data
    from tests._stream_script import search as _search

    X, y = _data()
    _search(a.backend, a.address, a.checkpoint, a.log).fit(X, y)
