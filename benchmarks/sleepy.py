"""An estimator whose fit sleeps: it stands in for real fits to simulate many slots.

``time.sleep`` releases the GIL and uses no CPU, so a 2-core machine can host a
LocalCluster of 64+ worker threads whose "fits" all run at once: what is measured is
the orchestration (client, scheduler, task and result handling), not compute.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SleepyClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; ``fit`` sleeps ``seconds`` first.

    In a process whose environment sets ``DISTSK_SLEEPY_SLOWDOWN=k``, fits sleep k times
    longer: a slow worker, for the straggler benchmark and tests.
    """

    def __init__(self, seconds=0.5, C=1.0):
        self.seconds = seconds
        self.C = C

    def fit(self, X, y):
        time.sleep(self.seconds * float(os.environ.get("DISTSK_SLEEPY_SLOWDOWN", "1")))
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)
