"""A checkpointed halving search (4 rounds), run as its own process so a test can SIGKILL
it in round 3."""

import argparse

import numpy as np
from sklearn.datasets import make_classification

from distsk import DistributedHalvingGridSearchCV
from tests.counting import CountingClassifier

GRID = {"C": [float(c) for c in np.logspace(-3, 3, 27)]}


def data():
    return make_classification(n_samples=400, n_features=5, random_state=0)


def search(backend, checkpoint, counter, sleep):
    # 27 candidates, factor 3, cv=2 on 400 samples: rounds of 27, 9, 3 and 1 candidates.
    return DistributedHalvingGridSearchCV(
        CountingClassifier(counter=counter, sleep=sleep), GRID, cv=2, random_state=0,
        refit=False, backend=backend, checkpoint=checkpoint,
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--backend")
    p.add_argument("--checkpoint")
    p.add_argument("--counter")
    p.add_argument("--sleep", type=float, default=0.3)
    a = p.parse_args()
    X, y = data()
    search(a.backend, a.checkpoint, a.counter, a.sleep).fit(X, y)
