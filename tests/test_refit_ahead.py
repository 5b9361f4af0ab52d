"""The refit runs ahead: sklearn refits the best candidate on all of X after the last
fit, while every slot waits; distsk starts it beside the last fits, on the runner --
from the start of a halving search's last round of one candidate (it is the best), or on
slots left idle at the end for the candidate ranked best so far. The model is taken only
when it is sklearn's refit (same parameters, X, y, fit parameters); a leader that loses
in the end is discarded and sklearn's own refit runs. Results stay sklearn's."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV

from distsk import DistributedHalvingGridSearchCV, DistributedSearchCV
from distsk._engines.local import LokyRunner
from distsk._search.loop import RefitAhead
from distsk._units.fit_call import FitCall

from ._search_helpers import assert_same_search
from .counting import CountingClassifier, fits

X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)


def _engine(request, backend):
    return request.getfixturevalue("client") if backend == "dask" else None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_last_round_of_one_refits_beside_its_fits(backend, request, tmp_path):
    # 9 candidates, factor 3: rounds of 9, 3 and 1; the last one's refit is certain.
    ref_counter, counter = str(tmp_path / "sklearn.txt"), str(tmp_path / "distsk.txt")
    grid = {"C": list(np.logspace(-3, 2, 9))}
    ref = HalvingGridSearchCV(CountingClassifier(counter=ref_counter), grid, cv=3,
                              random_state=0).fit(X, y)
    ours = DistributedHalvingGridSearchCV(
        CountingClassifier(counter=counter), grid, cv=3, random_state=0, n_jobs=2,
        backend=backend, client=_engine(request, backend)).fit(X, y)
    assert ref.n_candidates_ == ours.n_candidates_ == [9, 3, 1]
    assert_same_search(ours, ref)
    assert ours._refit_ran_ahead
    assert type(ours.best_estimator_) is CountingClassifier
    assert ours.refit_time_ > 0
    # The refit (C and all 300 rows) was made once, as sklearn made it; other fits
    # beyond sklearn's are next-round fits run ahead and discarded.
    made, sklearns = fits(counter), fits(ref_counter)
    assert [f for f in made if f.split()[1] == "300"] == [
        f for f in sklearns if f.split()[1] == "300"]
    assert set(sklearns) <= set(made)
    # A discarded fit ran, or was stopped before it ran (a unit told to stop by the result
    # stream ends before its next fit): no fit beyond the discarded ones.
    assert len(made) - len(sklearns) <= ours.n_fits_discarded_


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_forest_halving_refit_ahead_is_sklearns_model(backend):
    grid = {"max_depth": [2, 4, None], "max_features": [1, 2, "sqrt"]}
    kw = dict(resource="n_estimators", max_resources=27, cv=3, random_state=0)
    ref = HalvingGridSearchCV(RandomForestClassifier(random_state=0), grid, **kw).fit(X, y)
    ours = DistributedHalvingGridSearchCV(RandomForestClassifier(random_state=0), grid,
                                          backend=backend, n_jobs=2, **kw).fit(X, y)
    assert_same_search(ours, ref)
    assert ours._refit_ran_ahead == (backend != "sequential")  # one slot: nothing beside
    np.testing.assert_array_equal(ours.best_estimator_.predict_proba(X),
                                  ref.best_estimator_.predict_proba(X))
    assert ours.best_estimator_.get_params() == ref.best_estimator_.get_params()


# Uneven folds (train 200, 210, 190 rows; test 100, 90, 110) and a scorer that reads
# the score from a table by (C, test rows): candidate C=2 sleeps in its 190-row fit and
# scores 0.7, 0.7 then 1.3 (mean 0.9); C=1 scores 0.8 everywhere. While C=2's slow fold
# runs, C=1 leads (0.8 > 0.7) and its refit starts ahead; C=2 wins in the end.
def _uneven_folds():
    idx = np.arange(len(X))
    tests = [idx[:100], idx[100:190], idx[190:]]
    return [(np.setdiff1d(idx, t), t) for t in tests]


SCORES = {(1.0, 100): 0.8, (1.0, 90): 0.8, (1.0, 110): 0.8,
          (2.0, 100): 0.7, (2.0, 90): 0.7, (2.0, 110): 1.3}


def table_scorer(estimator, X_test, y_test):
    return SCORES[(estimator.C, len(X_test))]


def c_scorer(estimator, X_test, y_test):
    return 1.0 / estimator.C  # C=1 wins


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_leader_that_loses_is_discarded_and_sklearns_refit_runs(backend, request,
                                                                tmp_path):
    ref_counter, counter = str(tmp_path / "sklearn.txt"), str(tmp_path / "distsk.txt")
    grid = {"C": [1.0, 2.0]}

    def est(path):
        return CountingClassifier(counter=path, sleep=2.0, sleep_rows=190)

    ref = GridSearchCV(est(ref_counter), grid, cv=_uneven_folds(),
                       scoring=table_scorer).fit(X, y)
    assert ref.best_params_ == {"C": 2.0}
    ours = DistributedSearchCV(est(counter), grid, cv=_uneven_folds(), scoring=table_scorer,
                               n_jobs=2, backend=backend,
                               client=_engine(request, backend)).fit(X, y)
    assert_same_search(ours, ref)
    if backend == "loky":
        # Units start in order there: C=2's slow fold is the last, and C=1 leads while
        # it runs. (A Dask scheduler may run the slow fold first: C=2 then leads with
        # 0.7 and 1.3 while a quick fold is still queued, and its refit is taken.)
        assert not ours._refit_ran_ahead
    assert type(ours.best_estimator_) is CountingClassifier
    assert ours.best_estimator_.C == 2.0
    np.testing.assert_array_equal(ours.best_estimator_.predict(X), ref.best_estimator_.predict(X))
    # sklearn's fits, and at most one more: the leader's refit (C=1 on all rows),
    # discarded.
    made, sklearns = fits(counter), fits(ref_counter)
    assert set(sklearns) <= set(made)
    extra = [line.split()[:2] for line in made if line not in sklearns]
    assert extra == [] if ours._refit_ran_ahead else extra in ([], [["1.0", "300"]])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_leader_that_wins_is_taken(backend, request, tmp_path):
    # The loser's folds sleep: while its last one runs, a slot is idle and the leader,
    # which wins, is refit there; sklearn's refit takes that model.
    ref_counter, counter = str(tmp_path / "sklearn.txt"), str(tmp_path / "distsk.txt")
    grid = [{"C": [1.0]}, {"C": [2.0], "sleep": [1.0]}]
    ref = GridSearchCV(CountingClassifier(counter=ref_counter), grid, cv=3,
                       scoring=c_scorer).fit(X, y)
    assert ref.best_params_ == {"C": 1.0}
    ours = DistributedSearchCV(CountingClassifier(counter=counter), grid, cv=3, n_jobs=2,
                               scoring=c_scorer, backend=backend,
                               client=_engine(request, backend)).fit(X, y)
    assert_same_search(ours, ref)
    assert ours._refit_ran_ahead
    assert sorted(fits(counter)) == sorted(fits(ref_counter))


@pytest.mark.timeout(120)
def test_forest_refit_split_over_free_slots_is_sklearns_forest(client):
    # 6 slots (2 worker threads, queued), a last round of one candidate x 3 folds: the
    # refit's 27 trees go out as 3 sub-forests beside them, merged in order.
    grid = {"max_depth": [2, 4, None], "max_features": [1, 2, 3]}
    kw = dict(resource="n_estimators", max_resources=27, cv=3, random_state=0)
    ref = HalvingGridSearchCV(RandomForestClassifier(random_state=0), grid, **kw).fit(X, y)
    ours = DistributedHalvingGridSearchCV(RandomForestClassifier(random_state=0), grid,
                                          backend="dask", client=client, n_jobs=6,
                                          **kw).fit(X, y)
    assert_same_search(ours, ref)
    assert ours._refit_ran_ahead and ours._refit_parts == 3
    assert ours.best_estimator_.get_params() == ref.best_estimator_.get_params()
    assert len(ours.best_estimator_.estimators_) == 27
    for theirs, mine in zip(ref.best_estimator_.estimators_, ours.best_estimator_.estimators_):
        assert theirs.random_state == mine.random_state
        np.testing.assert_array_equal(theirs.tree_.threshold, mine.tree_.threshold)
    np.testing.assert_array_equal(ours.best_estimator_.predict_proba(X),
                                  ref.best_estimator_.predict_proba(X))


@pytest.mark.timeout(120)
def test_idle_slots_refit_every_candidate_and_sklearns_best_is_taken(client, tmp_path):
    # 6 slots, 2 candidates x 2 folds: from the start 2 slots are idle, as many as the
    # candidates, so both are refit ahead; sklearn's best is taken, the other dropped.
    ref_counter, counter = str(tmp_path / "sklearn.txt"), str(tmp_path / "distsk.txt")
    grid = {"C": [1.0, 2.0]}
    ref = GridSearchCV(CountingClassifier(counter=ref_counter), grid, cv=2,
                       scoring=c_scorer).fit(X, y)
    ours = DistributedSearchCV(CountingClassifier(counter=counter), grid, cv=2,
                               scoring=c_scorer, n_jobs=6, backend="dask",
                               client=client).fit(X, y)
    assert_same_search(ours, ref)
    assert ours._refit_ran_ahead and ours.best_estimator_.C == 1.0
    made, sklearns = fits(counter), fits(ref_counter)
    assert set(sklearns) <= set(made)
    extra = [line.split()[:2] for line in made if line not in sklearns]
    assert extra in ([], [["2.0", "300"]])  # the other candidate's refit, if it ran


def test_take_merges_a_split_forest_refit():
    runner = LokyRunner(2)
    try:
        forest = RandomForestClassifier(n_estimators=10, random_state=0)
        item = FitCall(None, (forest, X, y), {"fit_params": {}})
        ahead = RefitAhead()
        ahead.start(runner, item, {"max_depth": 3}, parts=3)
        assert len(ahead.futures) == 3
        model, _ = ahead.take({"max_depth": 3}, X, y, {})
        fresh = RandomForestClassifier(n_estimators=10, random_state=0, max_depth=3).fit(X, y)
        assert model.get_params() == fresh.get_params()
        np.testing.assert_array_equal(model.predict_proba(X), fresh.predict_proba(X))
        # Not split: out-of-bag scores need every tree together.
        ahead = RefitAhead()
        ahead.start(runner, item, {"max_depth": 3, "oob_score": True}, parts=3)
        assert len(ahead.futures) == 1
    finally:
        runner.close()


def test_take_wants_sklearns_very_refit():
    runner = LokyRunner(2)
    try:
        item = FitCall(None, (LogisticRegression(), X, y), {"fit_params": {}})
        ahead = RefitAhead()
        ahead.start(runner, item, {"C": 0.5})
        assert ahead.take({"C": 2.0}, X, y, {}) is None  # another candidate
        ahead.start(runner, item, {"C": 0.5})
        assert ahead.take({"C": 0.5}, X.copy(), y, {}) is None  # other data
        ahead.start(runner, item, {"C": 0.5})
        model, seconds = ahead.take({"C": 0.5}, X, y, {})
        assert seconds > 0
        np.testing.assert_array_equal(model.coef_, LogisticRegression(C=0.5).fit(X, y).coef_)
    finally:
        runner.close()
