"""The interrupted half of the ``resume`` scenario: a checkpointed rf-grid search that
the benchmark SIGKILLs part-way (run as ``python _resume_child.py SPEC.json``).

It writes the time its search starts (after imports, data, and warming its loky pool
with one small search) to ``spec["started"]``, so the benchmark counts only search time, not this process's
start-up.
"""

import json
import sys
import time

from joblib import Parallel, delayed
from run import _warm
from scenarios import rf_grid_search


def main(path):
    with open(path) as f:
        spec = json.load(f)
    search, X, y = rf_grid_search(spec["rows"], spec["cols"], spec["grid"], spec["cv"],
                                  checkpoint=spec["checkpoint"])
    # Warm like the parent (loky workers started and loaded, a first search made): the
    # kill interrupts a search in the state the benchmark's other contenders start in.
    Parallel(n_jobs=-1)(delayed(_warm)() for _ in range(4))
    warm, _, _ = rf_grid_search(spec["rows"], spec["cols"],
                                {"n_estimators": [5], "max_depth": [2]}, spec["cv"])
    warm.fit(X, y)
    with open(spec["started"], "w") as f:
        f.write(repr(time.time()))
    search.fit(X, y)


if __name__ == "__main__":
    main(sys.argv[1])
