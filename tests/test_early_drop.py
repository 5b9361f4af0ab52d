"""``early_drop`` (#24 section 3): weak candidates get no further folds, opt-in.

The drops are checked against sklearn itself: GridSearchCV's own split scores, run
through the documented rule (a one-sided paired t-test against each round's leader),
say which candidates must be dropped after which fold; distsk must drop exactly those,
report every fold it ran with sklearn's scores, NaN for the others, and rank the
dropped after every candidate that finished -- on every engine, and after a resume.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.stats import t as student_t
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from sklearn.utils._param_validation import InvalidParameterError

from distsk import DistributedHalvingGridSearchCV, DistributedSearchCV

from .counting import needs_sklearn_callbacks

pytestmark = pytest.mark.timeout(300)

X, y = load_digits(return_X_y=True)
X, y = X[:400] / 16.0, y[:400]
GRID = {"gamma": [1e-3, 1e-2, 0.1, 1.0, 10.0], "C": [0.1, 1.0, 10.0]}
CONFIDENCE = 0.95


@pytest.fixture(scope="module")
def reference():
    return GridSearchCV(SVC(), GRID, cv=5).fit(X, y)


def expected_drops(split_scores: np.ndarray, confidence: float) -> dict[int, int]:
    """{candidate: last fold run} by the rule documented in distsk._search.early_drop,
    computed here from sklearn's scores of every fold."""
    n, folds = split_scores.shape
    alive, dropped = set(range(n)), {}
    for k in range(1, folds):
        if len(alive) < 2:
            break
        seen = {c: split_scores[c, : k + 1] for c in alive}
        finite = {c: s for c, s in seen.items() if np.all(np.isfinite(s))}
        if len(finite) < 2:
            continue
        leader = max(finite, key=lambda c: (finite[c].mean(), -c))
        bound = student_t.ppf(confidence, k)
        for c, s in finite.items():
            d = finite[leader] - s
            if c != leader and d.mean() - bound * d.std(ddof=1) / math.sqrt(k + 1) > 0:
                dropped[c] = k
        alive -= set(dropped)
    return dropped


def _splits(results, n_folds=5) -> np.ndarray:
    return np.column_stack([results[f"split{i}_test_score"] for i in range(n_folds)])


def _assert_dropped_as_sklearn_says(search, reference):
    theirs = _splits(reference.cv_results_)
    drops = expected_drops(theirs, CONFIDENCE)
    assert drops, "the grid must give drops for the test to mean anything"
    assert search.dropped_candidates_ == sorted(drops)
    ours = _splits(search.cv_results_)
    assert search.cv_results_["params"] == reference.cv_results_["params"]
    for c in range(len(theirs)):
        last = drops.get(c, theirs.shape[1] - 1)
        np.testing.assert_array_equal(ours[c, : last + 1], theirs[c, : last + 1])
        assert np.isnan(ours[c, last + 1:]).all()
    ranks = search.cv_results_["rank_test_score"]
    finished = [c for c in range(len(theirs)) if c not in drops]
    assert max(ranks[finished]) < min(ranks[sorted(drops)])
    np.testing.assert_array_equal(ranks[finished],
                                  reference.cv_results_["rank_test_score"][finished])
    assert search.best_params_ == reference.best_params_
    assert search.best_index_ not in drops
    np.testing.assert_array_equal(search.predict(X), reference.predict(X))
    # Fits not run: at least every fold after each drop but those already running.
    assert search.n_fits_performed_ < theirs.size


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_drops_are_the_rules_on_sklearns_scores(backend, reference):
    with pytest.warns(UserWarning, match="non-finite"):
        search = DistributedSearchCV(SVC(), GRID, cv=5, backend=backend,
                                     early_drop=CONFIDENCE).fit(X, y)
    _assert_dropped_as_sklearn_says(search, reference)


def test_drops_on_a_dask_cluster(client, reference):
    search = DistributedSearchCV(SVC(), GRID, cv=5, backend="dask", client=client,
                                 early_drop=CONFIDENCE).fit(X, y)
    _assert_dropped_as_sklearn_says(search, reference)


def test_off_by_default_is_sklearns_search(reference):
    search = DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential").fit(X, y)
    assert search.early_drop is None and search.dropped_candidates_ == []
    np.testing.assert_array_equal(_splits(search.cv_results_),
                                  _splits(reference.cv_results_))


def test_a_resume_drops_the_same_and_runs_nothing(tmp_path, reference):
    path = tmp_path / "search.sqlite"
    first = DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential",
                                early_drop=CONFIDENCE, checkpoint=path).fit(X, y)
    again = DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential",
                                early_drop=CONFIDENCE, checkpoint=path).fit(X, y)
    assert again.n_fits_performed_ == 0
    assert again.dropped_candidates_ == first.dropped_candidates_
    _assert_dropped_as_sklearn_says(again, reference)
    # Without early_drop the same checkpoint continues to sklearn's full search: the
    # NaN folds were never stored.
    full = DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential",
                               checkpoint=path).fit(X, y)
    assert full.n_fits_performed_ == (len(reference.cv_results_["params"]) * 5
                                      - first.n_fits_performed_)
    np.testing.assert_array_equal(_splits(full.cv_results_), _splits(reference.cv_results_))


def test_with_several_scorers_it_compares_on_refits(reference):
    scoring = {"acc": "accuracy", "bal": "balanced_accuracy"}
    search = DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential",
                                 scoring=scoring, refit="acc",
                                 early_drop=CONFIDENCE).fit(X, y)
    drops = expected_drops(_splits(reference.cv_results_), CONFIDENCE)
    assert search.dropped_candidates_ == sorted(drops)
    assert np.isnan(search.cv_results_["mean_test_bal"][sorted(drops)]).all()
    with pytest.raises(ValueError, match="set refit to the name of the scorer"):
        DistributedSearchCV(SVC(), GRID, cv=5, scoring=scoring, refit=False,
                            early_drop=CONFIDENCE).fit(X, y)


def test_with_a_time_budget_both_apply(reference):
    search = DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential",
                                 time_budget=600, random_state=0,
                                 early_drop=CONFIDENCE).fit(X, y)
    assert not search.time_budget_ended_
    _assert_dropped_as_sklearn_says(search, reference)


@needs_sklearn_callbacks
def test_the_progress_bar_shows_the_candidates_dropped(capsys):
    pytest.importorskip("rich", reason="the progress bar needs the [all] extra (rich)")
    DistributedSearchCV(SVC(), GRID, cv=5, backend="sequential", verbose=1,
                        early_drop=CONFIDENCE).fit(X, y)
    out = capsys.readouterr().out
    # Every fit counted once, as run (the report pass's replays are not), the total
    # less the fits the drops cancelled: the finished bar reads "N/N fits".
    done = re.findall(r"(\d+)/(\d+) fits \((\d+) candidates dropped\)", out)
    assert done and done[-1][0] == done[-1][1], out[-300:]
    assert "resumed" not in out


def test_a_halving_search_drops_within_its_rounds():
    kwargs = dict(factor=2, cv=5, random_state=0, min_resources=200)
    search = DistributedHalvingGridSearchCV(SVC(), GRID, backend="sequential",
                                            early_drop=CONFIDENCE, **kwargs).fit(X, y)
    reference = DistributedHalvingGridSearchCV(SVC(), GRID, backend="sequential",
                                               **kwargs).fit(X, y)
    results = search.cv_results_
    assert search.dropped_candidates_
    means = np.asarray(results["mean_test_score"])
    assert np.isnan(means[search.dropped_candidates_]).all()
    assert search.best_index_ not in search.dropped_candidates_
    # The first round is the same candidates, and those not dropped have sklearn's
    # scores.
    first = np.flatnonzero(np.asarray(results["iter"]) == 0)
    kept = [i for i in first if i not in search.dropped_candidates_]
    np.testing.assert_array_equal(means[kept],
                                  np.asarray(reference.cv_results_["mean_test_score"])[kept])
    assert search.best_params_ == reference.best_params_


@pytest.mark.parametrize("bad", [0, 1, -0.5, 1.5, float("nan"), "high"])
def test_bad_confidences_are_sklearns_invalid_parameter_error(bad):
    with pytest.raises(InvalidParameterError, match="early_drop"):
        DistributedSearchCV(SVC(), GRID, early_drop=bad).fit(X, y)


def test_a_candidate_sharing_a_prefix_is_dropped_alone_and_its_final_steps_saved():
    # Candidates differing only in the final step share each fold's prefix fit: a
    # dropped one's final steps are cut from the fold's shared unit (the prefix still
    # runs for the others). Before, they were dropped together or not at all, and the
    # pipeline grid of the early_drop benchmark saved no fit.
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(PCA(random_state=0), SVC())
    grid = {"pca__n_components": [2, 30], "svc__gamma": [1e-3, 1.0, 10.0]}
    search = DistributedSearchCV(pipe, grid, cv=5, backend="sequential",
                                 early_drop=CONFIDENCE).fit(X, y)
    reference = GridSearchCV(pipe, grid, cv=5).fit(X, y)
    _assert_dropped_as_sklearn_says(search, reference)
    drops = expected_drops(_splits(reference.cv_results_), CONFIDENCE)
    groups: dict = {}  # prefix (n_components) -> {dropped?} of its candidates
    for i, params in enumerate(reference.cv_results_["params"]):
        groups.setdefault(params["pca__n_components"], set()).add(i in drops)
    assert {True, False} in groups.values(), "the grid must drop part of a prefix's group"
    # Final steps saved: at least the folds it reports ran, fewer than all (a unit out
    # when its round completes runs on: 2 units per slot are out).
    n_candidates = len(reference.cv_results_["params"])
    reported = sum(drops.get(c, 4) + 1 for c in range(n_candidates))
    assert reported <= search.n_final_step_fits_ < 5 * n_candidates
