"""Test estimators whose fits are visible from outside the process that runs them."""

import os
import signal
import time

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class CountingClassifier(ClassifierMixin, BaseEstimator):
    """LogisticRegression that appends a line to ``counter`` for every fit.

    ``die=True`` kills the process running the fit (as an out-of-memory kill would).
    """

    def __init__(self, C=1.0, counter=None, sleep=0.0, die=False):
        self.C = C
        self.counter = counter
        self.sleep = sleep
        self.die = die

    def fit(self, X, y):
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.counter:
            with open(self.counter, "a") as f:
                f.write(f"{self.C}\n")
        time.sleep(self.sleep)
        self.model_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def count(path) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0
