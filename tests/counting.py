"""Test estimators whose fits are visible from outside the process that runs them."""

import os
import signal
import time
import zlib

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from distsk._compat import CALLBACKS_NEED, HAS_CALLBACKS

#: Tests of what sklearn's fit callbacks do (set_callbacks, distsk's progress bar): they
#: need sklearn >= 1.9, and say so when skipped on an older release.
needs_sklearn_callbacks = pytest.mark.skipif(not HAS_CALLBACKS, reason=f"needs {CALLBACKS_NEED}")


def logistic_without_joblib(**params) -> LogisticRegression:
    """A LogisticRegression whose fit runs no joblib Parallel of its own, on every
    supported sklearn. Before 1.8 ``LogisticRegression.fit`` runs one (one job), which a
    test that counts a backend's Parallel calls, or collects a search's calls with the
    collector active around in-process fits, would take for one of the search's own;
    its liblinear solver makes none (and is lbfgs's model on these small problems)."""
    return LogisticRegression(solver="liblinear", **params)


class CountingClassifier(ClassifierMixin, BaseEstimator):
    """LogisticRegression that appends a line to ``counter`` for every fit.

    The line names the fit: ``C`` and a fingerprint of the training rows, so a test can
    tell a fit that ran twice (a straggler's copy) from two different fits.

    ``die=True`` kills the process running the fit (as an out-of-memory kill would).
    ``sleep_rows``: sleep only in fits on that many rows (one fold of uneven folds).
    """

    def __init__(self, C=1.0, counter=None, sleep=0.0, die=False, sleep_rows=None):
        self.C = C
        self.counter = counter
        self.sleep = sleep
        self.die = die
        self.sleep_rows = sleep_rows

    def fit(self, X, y):
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.counter:
            with open(self.counter, "a") as f:
                rows = zlib.crc32(np.ascontiguousarray(X).tobytes())
                f.write(f"{self.C} {len(X)} {rows}\n")
        if self.sleep_rows is None or len(X) == self.sleep_rows:
            time.sleep(self.sleep)
        self.model_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def fits(path) -> list[str]:
    """One line per fit started, in the order they started."""
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def count(path) -> int:
    return len(fits(path))


class RecordingCallback:
    """A sklearn 1.9 fit callback recording which tasks began and ended, and where.

    Its events reach the process that created it through sklearn's callback transport
    (or, on Dask workers, through distsk's forwarding of it as Dask events).
    """

    def __init__(self):
        from sklearn.callback._transport import open_listener

        self.record = []
        self._listener_handle = open_listener(self.record.append, owner=self)

    def __getstate__(self):
        return {**self.__dict__, "record": []}

    def _send(self, hook, context, metadata=None):
        from sklearn.callback._transport import send

        resumed = bool((metadata or {}).get("distsk_resumed"))
        send(self._listener_handle, (hook, context.task_name, os.getpid(), resumed))

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, *, metadata=None):
        self._send("begin", context, metadata)

    def on_fit_task_end(self, estimator, context, *, metadata=None):
        self._send("end", context, metadata)

    def ends(self, task_name):
        return [r for r in self.record if r[0] == "end" and r[1] == task_name]

