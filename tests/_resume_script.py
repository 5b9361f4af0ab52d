"""A search with a checkpoint, run as its own process so a test can SIGKILL it."""

import argparse
import signal

import numpy as np
from sklearn.datasets import make_classification

from distsk import DistributedSearchCV
from tests.counting import CountingClassifier

GRID = {"C": [float(c) for c in np.logspace(-3, 3, 12)]}


def data():
    return make_classification(n_samples=200, n_features=5, random_state=0)


def search(backend, client, checkpoint, counter, sleep):
    return DistributedSearchCV(
        CountingClassifier(counter=counter, sleep=sleep), GRID, cv=3, refit=False,
        backend=backend, client=client, checkpoint=checkpoint,
    )


if __name__ == "__main__":
    # Interrupted as a user's terminal would: Ctrl-C raises KeyboardInterrupt. A child
    # inherits its parent's ignored and blocked signals; in a full suite run, something
    # earlier in the pytest process had left SIGINT ignored or blocked, and the child
    # then ran to its end through the test's SIGINT (exit 0, nothing on stderr: CI,
    # 2026-12-08, twice).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = argparse.ArgumentParser()
    p.add_argument("--backend")
    p.add_argument("--address", default=None)
    p.add_argument("--checkpoint")
    p.add_argument("--counter")
    p.add_argument("--sleep", type=float, default=0.3)
    a = p.parse_args()
    X, y = data()
    search(a.backend, a.address, a.checkpoint, a.counter, a.sleep).fit(X, y)
