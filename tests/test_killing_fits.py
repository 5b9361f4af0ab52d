"""A fit that kills the process running it every time (out of memory, a crash in native
code) ends as its candidate's error_score, with a clear message; the other candidates keep
sklearn's scores. On a CLI-started Dask cluster and on loky, with real SIGKILLs."""

import numpy as np
import pytest
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV

from distsk import DistributedSearchCV

from ._resume_script import data
from .counting import CountingClassifier

X, y = data()
GRID = {"die": [False, True], "C": [0.1, 1.0]}  # die=True SIGKILLs its own process


def reference():
    return GridSearchCV(CountingClassifier(), {"die": [False], "C": GRID["C"]}, cv=2,
                        refit=False).fit(X, y)


def check_killers_end_as_error_score(**kw):
    """Search GRID: the die=True candidates score NaN with a FitFailedWarning naming the
    signal; the others score exactly as sklearn's."""
    search = DistributedSearchCV(CountingClassifier(), GRID, cv=2, refit=False, **kw)
    with pytest.warns(FitFailedWarning, match="died every time it ran it") as caught:
        search.fit(X, y)
    # Other warnings may come first (loky's "Trying to resize an executor with running
    # jobs" when an earlier test left its shared pool busy): the FitFailedWarning's.
    failed = [str(w.message) for w in caught if issubclass(w.category, FitFailedWarning)]
    assert any("killed by signal SIGKILL" in m for m in failed), failed
    ours, ref = search.cv_results_, reference().cv_results_
    survived = [i for i, p in enumerate(ours["params"]) if not p["die"]]
    killed = [i for i, p in enumerate(ours["params"]) if p["die"]]
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        assert list(ours[key][survived]) == list(ref[key]), key
        assert all(np.isnan(ours[key][killed])), key


def check_raise_stops_with_the_sentence(**kw):
    strict = DistributedSearchCV(CountingClassifier(die=True), {"C": [1.0]}, cv=2,
                                 error_score="raise", **kw)
    with pytest.raises(RuntimeError, match="died every time it ran it"):
        strict.fit(X, y)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_fit_that_kills_its_dask_worker_every_time_ends_as_error_score(fragile_cluster):
    from distributed import Client

    with Client(fragile_cluster.address, set_as_default=False, timeout=30) as client:
        check_killers_end_as_error_score(backend="dask", client=client)
        client.wait_for_workers(2, timeout=60)  # the nannies restarted the killed workers
        check_raise_stops_with_the_sentence(backend="dask", client=client)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fit_that_kills_its_loky_worker_every_time_ends_as_error_score():
    """The killed worker breaks the pool; the running units are tried again in child
    processes, and the next search gets a working pool."""
    check_killers_end_as_error_score(backend="loky")
    check_raise_stops_with_the_sentence(backend="loky")
    again = DistributedSearchCV(CountingClassifier(), {"C": GRID["C"]}, cv=2,
                                backend="loky", refit=False).fit(X, y)
    assert list(again.cv_results_["mean_test_score"]) == list(
        reference().cv_results_["mean_test_score"])
