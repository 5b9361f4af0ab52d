"""A fit that kills the process running it every time (out of memory, a crash in native
code) ends as its candidate's error_score, with a clear message; the other candidates keep
sklearn's scores. On a CLI-started Dask cluster and on loky, with real SIGKILLs."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from distsk import DistributedSearchCV

from ._resume_script import data
from .counting import CountingClassifier

X, y = data()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_fit_that_kills_its_worker_every_time_ends_as_error_score(fragile_cluster):
    """Out of memory, every time: that candidate scores error_score, the others are kept."""
    from distributed import Client
    from sklearn.exceptions import FitFailedWarning

    grid = {"die": [False, True], "C": [0.1, 1.0]}
    with Client(fragile_cluster.address, set_as_default=False, timeout=30) as client:
        search = DistributedSearchCV(CountingClassifier(), grid, cv=2, backend="dask",
                                     client=client, refit=False)
        with pytest.warns(FitFailedWarning, match="died every time it ran it") as caught:
            search.fit(X, y)
        assert "killed by signal SIGKILL" in str(caught[0].message)
        ref = GridSearchCV(CountingClassifier(), {"die": [False], "C": grid["C"]}, cv=2,
                           refit=False).fit(X, y)
        ours = search.cv_results_
        survived = [i for i, p in enumerate(ours["params"]) if not p["die"]]
        killed = [i for i, p in enumerate(ours["params"]) if p["die"]]
        for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
            assert list(ours[key][survived]) == list(ref.cv_results_[key]), key
            assert all(np.isnan(ours[key][killed])), key
        # error_score="raise": the search stops with that sentence, not a Dask traceback.
        client.wait_for_workers(2, timeout=60)
        strict = DistributedSearchCV(CountingClassifier(die=True), {"C": [1.0]}, cv=2,
                                     backend="dask", client=client, error_score="raise")
        with pytest.raises(RuntimeError, match="died every time it ran it"):
            strict.fit(X, y)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fit_that_kills_its_loky_worker_every_time_ends_as_error_score():
    """On loky too: the killed worker breaks the pool, the running units are tried again
    in child processes, the culprit ends as error_score and the others keep their scores."""
    from sklearn.exceptions import FitFailedWarning

    grid = {"die": [False, True], "C": [0.1, 1.0]}
    search = DistributedSearchCV(CountingClassifier(), grid, cv=2, backend="loky", refit=False)
    with pytest.warns(FitFailedWarning, match="died every time it ran it") as caught:
        search.fit(X, y)
    assert "killed by signal SIGKILL" in str(caught[0].message)
    ref = GridSearchCV(CountingClassifier(), {"die": [False], "C": grid["C"]}, cv=2,
                       refit=False).fit(X, y)
    ours = search.cv_results_
    survived = [i for i, p in enumerate(ours["params"]) if not p["die"]]
    killed = [i for i, p in enumerate(ours["params"]) if p["die"]]
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        assert list(ours[key][survived]) == list(ref.cv_results_[key]), key
        assert all(np.isnan(ours[key][killed])), key
    # The pool works again for the next search, and error_score="raise" stops with it.
    strict = DistributedSearchCV(CountingClassifier(die=True), {"C": [1.0]}, cv=2,
                                 backend="loky", error_score="raise")
    with pytest.raises(RuntimeError, match="died every time it ran it"):
        strict.fit(X, y)
    again = DistributedSearchCV(CountingClassifier(), {"C": grid["C"]}, cv=2,
                                backend="loky", refit=False).fit(X, y)
    assert list(again.cv_results_["mean_test_score"]) == list(ref.cv_results_["mean_test_score"])
