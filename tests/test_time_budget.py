"""``time_budget`` (#24 sections 1, 2): a search given a deadline, and one that continues.

Under a budget the search ends at the deadline with sklearn's own ``cv_results_`` for
the candidates whose folds all finished (compared here with GridSearchCV on exactly
those candidates), and with a checkpoint a second fit continues without running a
finished fit again, ending equal to the full search.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from distsk import DistributedSearchCV

from .counting import needs_sklearn_callbacks

pytestmark = pytest.mark.timeout(240)

X, y = make_classification(n_samples=150, n_features=6, random_state=0)
GRID = {"C": list(np.logspace(-3, 3, 12))}
PAUSE = 0.15  # seconds each fit sleeps: 12 candidates x 3 folds = 5.4 s of fits


class SlowLogisticRegression(LogisticRegression):
    """LogisticRegression whose fit first sleeps PAUSE seconds (same model)."""

    pause = PAUSE

    def fit(self, X, y, sample_weight=None):
        time.sleep(self.pause)
        return super().fit(X, y, sample_weight=sample_weight)


class SlowerLogisticRegression(SlowLogisticRegression):
    pause = 0.3


def _reference(candidates):
    """GridSearchCV on exactly ``candidates``, in their order."""
    return GridSearchCV(LogisticRegression(), [{"C": [c["C"]]} for c in candidates],
                        cv=3).fit(X, y)


def _assert_sklearns(search, reference):
    ours, theirs = search.cv_results_, reference.cv_results_
    assert ours["params"] == theirs["params"]
    for key in theirs:
        if "time" not in key:
            np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]),
                                          err_msg=key)
    assert search.best_params_ == reference.best_params_
    np.testing.assert_array_equal(search.predict(X), reference.predict(X))


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_a_budget_not_reached_is_sklearns_search(backend):
    search = DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend=backend,
                                 time_budget=600, random_state=0).fit(X, y)
    assert not search.time_budget_ended_ and search.n_candidates_evaluated_ == 12
    _assert_sklearns(search, _reference([{"C": c} for c in GRID["C"]]))
    assert search.plan_.time_budget == 600.0 and "budget 600.00 s" in search.plan_.headline()


def test_the_deadline_ends_the_search_with_sklearns_results_for_the_finished():
    budget = 1.5
    started = time.perf_counter()
    search = DistributedSearchCV(SlowLogisticRegression(), GRID, cv=3, backend="sequential",
                                 time_budget=budget, random_state=0).fit(X, y)
    spent = time.perf_counter() - started
    assert search.time_budget_ended_
    finished = search.cv_results_["params"]
    assert 0 < len(finished) == search.n_candidates_evaluated_ < 12
    # In sklearn's order (the grid's), though run in the budget's shuffled order.
    order = [c["C"] for c in finished]
    assert order == sorted(order)
    _assert_sklearns(search, _reference(finished))
    # Without the deadline the fits alone take 5.4 s; the stop comes within a second
    # of the deadline, then the refit (one fit) and sklearn's report.
    assert spent < budget + 2.5, spent


def test_the_budget_order_is_seeded_and_covers_the_grid():
    def evaluated(seed):
        search = DistributedSearchCV(SlowLogisticRegression(), GRID, cv=3,
                                     backend="sequential", time_budget=1.2,
                                     random_state=seed).fit(X, y)
        return [c["C"] for c in search.cv_results_["params"]]

    first = evaluated(0)
    assert evaluated(0) == first  # same seed, same candidates
    # Not the grid's first rows: a shuffled order reaches beyond them.
    assert max(first) > GRID["C"][len(first) - 1]


def test_a_second_fit_with_the_checkpoint_continues_to_the_full_search(tmp_path):
    ckpt = str(tmp_path / "budget.sqlite")
    first = DistributedSearchCV(SlowLogisticRegression(), GRID, cv=3, backend="sequential",
                                time_budget=1.5, random_state=0, checkpoint=ckpt).fit(X, y)
    assert first.time_budget_ended_
    done = first.n_fits_performed_
    second = DistributedSearchCV(SlowLogisticRegression(), GRID, cv=3, backend="sequential",
                                 random_state=0, checkpoint=ckpt).fit(X, y)
    # No finished fit runs again: every fit of the first run is resumed.
    assert second.n_fits_resumed_ >= 3 * first.n_candidates_evaluated_
    assert second.n_fits_resumed_ + second.n_fits_performed_ == 36
    assert second.n_fits_resumed_ <= done
    assert not second.time_budget_ended_ and second.n_candidates_evaluated_ == 12
    _assert_sklearns(second, _reference([{"C": c} for c in GRID["C"]]))


@pytest.mark.slow
def test_the_deadline_on_a_dask_cluster(client):
    # 24 candidates x 3 folds x 0.15 s on 2 worker slots; the budget is half of what the
    # same search takes here without one.
    grid = {"C": list(np.logspace(-3, 3, 24))}

    def search(budget=None):
        return DistributedSearchCV(SlowLogisticRegression(), grid, cv=3, backend="dask",
                                   client=client, time_budget=budget, random_state=0)

    DistributedSearchCV(SlowLogisticRegression(), {"C": [1.0, 2.0]}, cv=3, backend="dask",
                        client=client).fit(X, y)  # warm: the workers import this module
    started = time.perf_counter()
    search().fit(X, y)
    whole = time.perf_counter() - started
    ours = search(whole / 2).fit(X, y)
    assert ours.time_budget_ended_ and 0 < ours.n_candidates_evaluated_ < 24, whole
    _assert_sklearns(ours, _reference(ours.cv_results_["params"]))


def test_a_budget_too_short_for_any_candidate_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"time_budget=0.01 s ended before any of the 12"):
        DistributedSearchCV(SlowLogisticRegression(), GRID, cv=3, backend="sequential",
                            time_budget=0.01).fit(X, y)


@pytest.mark.parametrize("bad", [-1, 0, math.nan, "10"])
def test_bad_budgets_are_sklearns_invalid_parameter_error(bad):
    with pytest.raises(InvalidParameterError, match="time_budget"):
        DistributedSearchCV(LogisticRegression(), GRID, time_budget=bad).fit(X, y)


@pytest.mark.slow
def test_a_halving_search_under_a_budget_ends_at_a_round():
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    from distsk import DistributedHalvingGridSearchCV

    grid = {"C": list(np.logspace(-3, 3, 27))}
    kw = dict(cv=3, factor=3, random_state=0, backend="sequential")
    full = HalvingGridSearchCV(LogisticRegression(), grid, cv=3, factor=3,
                               random_state=0).fit(X, y)
    assert full.n_iterations_ == 3  # rounds of 27, 9 and 3 candidates
    # The rounds' times on this machine now, from a search without a budget: the budget
    # ends round 1 and cuts round 2 halfway.
    started = time.perf_counter()
    unbudgeted = DistributedHalvingGridSearchCV(SlowLogisticRegression(), grid, **kw).fit(X, y)
    wall = time.perf_counter() - started
    res = unbudgeted.cv_results_
    per_fit = (np.asarray(res["mean_fit_time"]) + np.asarray(res["mean_score_time"])) * 3
    rounds = [per_fit[res["iter"] == i].sum() for i in range(3)]
    overhead = max(0.0, wall - sum(rounds))
    budget = overhead + rounds[0] + rounds[1] / 2
    with pytest.raises(RuntimeError, match="ended before any of the 27 candidates"):
        DistributedHalvingGridSearchCV(SlowLogisticRegression(), grid, time_budget=rounds[0] / 3,
                                       **kw).fit(X, y)
    ours = DistributedHalvingGridSearchCV(SlowLogisticRegression(), grid, time_budget=budget,
                                          **kw).fit(X, y)
    assert ours.time_budget_ended_ and ours.n_iterations_ == 1, (budget, rounds, overhead)
    assert ours.n_candidates_ == full.n_candidates_[:1]
    assert ours.n_candidates_evaluated_ == 27 == len(ours.cv_results_["params"])
    # Round 1's results are sklearn's own.
    first = full.cv_results_["iter"] == 0
    np.testing.assert_array_equal(ours.cv_results_["mean_test_score"],
                                  full.cv_results_["mean_test_score"][first])
    assert ours.cv_results_["params"] == [p for p, f in zip(full.cv_results_["params"], first)
                                          if f]


@needs_sklearn_callbacks
def test_the_progress_bar_counts_each_fit_once_as_run(capsys):
    # The report pass replays every fit to sklearn's callbacks as resumed: the bar counts
    # the run's fits from the engine instead ("36/36 fits", not "(36 resumed)").
    pytest.importorskip("rich", reason="the progress bar needs the [all] extra (rich)")
    DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend="sequential", verbose=1,
                        time_budget=600, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert re.search(r"36/36 fits elapsed", out), out[-300:]
    assert "resumed" not in out


def test_the_refit_starts_on_slots_the_deadline_leaves_idle():
    # 0.3 s fits on 2 loky slots, 10.8 s of fits, a budget of 4 s: near the deadline no
    # fit may start (batches then hold only fits that end before it), and the freed slots
    # start the refit of the best candidate whose folds all finished, which sklearn's
    # refit takes. Before: the refit ran only after the deadline, in this process.
    search = DistributedSearchCV(SlowerLogisticRegression(), GRID, cv=3, backend="loky",
                                 n_jobs=2, time_budget=4.0, random_state=0).fit(X, y)
    assert search.time_budget_ended_
    assert search._refit_ran_ahead, "the refit was not started before the deadline"
    _assert_sklearns(search, _reference(search.cv_results_["params"]))


@pytest.mark.parametrize("budget", [600, 1.5])
def test_sklearns_fitting_line_is_printed_once(capsys, budget):
    # The two passes call sklearn's evaluate_candidates twice; the run's line (every
    # candidate) is sklearn's, the report's would repeat it for the finished ones.
    search = DistributedSearchCV(SlowLogisticRegression(), GRID, cv=3, backend="sequential",
                                 verbose=1, time_budget=budget, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Fitting 3 folds for each of") == 1, out
    assert "Fitting 3 folds for each of 12 candidates, totalling 36 fits" in out
    assert search.verbose == 1
