"""The cost model behind backend="auto" (distsk/_decide/cost_model.py, learned.py):
predictions per engine, memory that excludes a plan, corrections learned from wrong
predictions, and that real fits and searches record their predictions beside the actual
time."""

from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from distsk import DistributedEstimator, DistributedSearchCV, explain
from distsk._decide.cost_model import Costs
from distsk._decide.learned import LearnedCosts, learned_costs, use_learned_costs
from distsk._decide.planning import plan_fit, plan_search
from distsk._decide.profile import ComputeProfile, InputProfile

pytestmark = pytest.mark.timeout(120)

GB = 2**30
# The tiny grid: 20 LogisticRegression candidates x 5 folds on 1,000 x 4.
TINY = InputProfile("numpy", (1000, 4), 32_000)
LAPTOP = ComputeProfile(local_cores=2, local_available_bytes=16 * GB)
LOOPBACK = ComputeProfile(2, 16 * GB, "tcp://127.0.0.1:8786", n_workers=2, worker_threads=2,
                          worker_memory_bytes=8 * GB, workers_share_cores=True)
REMOTE = ComputeProfile(2, 16 * GB, "tcp://10.0.0.5:8786", n_workers=8, worker_threads=64,
                        worker_memory_bytes=256 * GB)


def search(inp=TINY, comp=LAPTOP, costs=None, **kw):
    kw.setdefault("n_jobs", None)
    kw.setdefault("n_fits", 100)
    kw.setdefault("probe_seconds", 0.0019)
    return plan_search(inp, comp, backend="auto", costs=costs, **kw)


def _cold(model):
    """``model``'s costs as if no loky pool were running: ``costs()`` reads the live
    pool, which earlier tests in this process may have left warm."""
    return replace(model.costs(measure=False), loky_workers=0)


def _process_default(**known) -> LearnedCosts:
    """A fresh process default for a test of the public face (tests/conftest.py replaces
    it again before the next test), sharing the overheads measured so far."""
    fresh = LearnedCosts(overheads=learned_costs().overheads, **known)
    use_learned_costs(fresh)
    return fresh


def test_tiny_grid_runs_on_a_warm_loky_pool_and_in_process_on_a_cold_one():
    warm = search(costs=Costs(loky_workers=2))
    cold = search(costs=Costs(loky_workers=0))
    assert warm.executor == "loky" and cold.executor == "sequential"
    # The reason says what each engine was expected to take, not a rule.
    assert "predicted fastest: loky" in warm.reason and "against sequential 190 ms" in warm.reason
    assert "900 ms to start the pool" in cold.reason


def test_every_engine_considered_is_recorded_with_its_prediction():
    p = search(comp=LOOPBACK, costs=Costs(loky_workers=2))
    assert [q.engine for q in p.predictions] == ["sequential", "loky", "dask"]
    assert all(q.seconds > 0 for q in p.predictions)
    assert p.predicted_seconds == min(q.seconds for q in p.predictions)
    assert p.executor in p.predictions_table().split("* ")[1]


def test_workers_on_this_machine_count_no_more_threads_than_its_cores():
    shared = search(comp=LOOPBACK, probe_seconds=1.0)
    apart = search(comp=LOOPBACK.__class__(**{**LOOPBACK.__dict__,
                                              "workers_share_cores": False,
                                              "worker_threads": 8}), probe_seconds=1.0)
    dask_shared = next(q for q in shared.predictions if q.engine == "dask")
    dask_apart = next(q for q in apart.predictions if q.engine == "dask")
    assert "on 2 worker threads (workers on this machine share its cores)" in dask_shared.detail
    assert dask_apart.seconds < dask_shared.seconds / 3


def test_big_remote_cluster_wins_long_searches_and_loses_tiny_ones():
    assert search(comp=REMOTE, probe_seconds=0.5).executor == "dask"
    assert search(comp=REMOTE, probe_seconds=0.0001, n_fits=10).executor == "sequential"


def test_bytes_to_send_at_the_bandwidth_seen_count_against_the_cluster():
    big = InputProfile("numpy", (10**6, 100), 800 * 10**6)
    fast = search(inp=big, comp=REMOTE, probe_seconds=0.05, costs=Costs(bandwidth=1e10))
    slow = search(inp=big, comp=REMOTE, probe_seconds=0.05, costs=Costs(bandwidth=1e6))
    assert fast.executor == "dask" and slow.executor != "dask"
    assert "to send the data to 8 workers" in str(slow.predictions[2])


def test_plan_whose_peak_memory_does_not_fit_is_not_chosen():
    # Each fit's probe peaked at 3 GB: two loky processes need 6 GB of the 4 GB free;
    # in process one fit at a time fits.
    small_machine = ComputeProfile(local_cores=2, local_available_bytes=4 * GB)
    p = search(comp=small_machine, probe_seconds=1.0, probe_bytes=3 * GB,
               costs=Costs(loky_workers=2))
    assert p.executor == "sequential"
    loky = next(q for q in p.predictions if q.engine == "loky")
    assert not loky.fits_memory and loky.seconds < p.predicted_seconds
    assert "loky" in p.reason and "excluded: predicted peak" in p.reason


def test_worker_memory_excludes_the_cluster():
    tight = ComputeProfile(2, 1 * GB, "tcp://10.0.0.5:8786", n_workers=8, worker_threads=64,
                           worker_memory_bytes=8 * GB)  # 1 GB a worker, 8 threads each
    p = search(comp=tight, probe_seconds=1.0, probe_bytes=300 * 2**20,
               costs=Costs(loky_workers=2))
    dask = next(q for q in p.predictions if q.engine == "dask")
    assert not dask.fits_memory and p.executor != "dask"


def test_fit_too_big_for_this_process_goes_to_a_worker_with_room():
    # 6 GB of input, 4 GB free here: the fit's copy cannot be made in this process.
    big = InputProfile("numpy", (10**7, 75), 6 * GB)
    roomy = ComputeProfile(2, 4 * GB, "tcp://10.0.0.5:8786", n_workers=2, worker_threads=2,
                           worker_memory_bytes=64 * GB)
    p = plan_fit(RandomForestClassifier(), big, roomy, max_gather_bytes=GB)
    assert p.executor == "dask" and not p.predictions[0].fits_memory
    assert "excluded: predicted peak" in p.predictions_table()
    assert "only a worker has the memory for the fit" in p.reason


def test_nothing_fits_runs_in_process_and_says_so():
    p = search(comp=ComputeProfile(2, GB), probe_seconds=1.0, probe_bytes=2 * GB)
    assert p.executor == "sequential" and "no engine's predicted peak memory fits" in p.reason


def test_prediction_off_by_more_than_2x_corrects_that_engine_for_later_plans():
    model = LearnedCosts()
    plan = search(costs=_cold(model), probe_seconds=0.01)  # 1 s in process
    assert plan.executor == "sequential"
    learned, note = model.learn(plan, plan.predicted_seconds * 3)
    assert learned.actual_seconds == pytest.approx(plan.predicted_seconds * 3)
    assert learned.predictions[0].actual_seconds == learned.actual_seconds
    assert "(3.00x)" in note and "scaled by 3.00" in note
    again = search(costs=_cold(model), probe_seconds=0.01)
    assert again.predictions[0].seconds == pytest.approx(3 * plan.predictions[0].seconds)
    # Single fits keep their own correction.
    assert _cold(model).factor("sequential", "fit") == 1.0


def test_prediction_within_2x_or_of_unpredictable_work_changes_nothing():
    model = LearnedCosts()
    plan = search(costs=_cold(model))
    assert model.learn(plan, plan.predicted_seconds * 1.9)[1] is None
    assert model.learn(plan, plan.predicted_seconds * 10, calibrate=False)[1] is None
    # Work shared by the search (a fifth of the fits run) is compared as such.
    assert model.learn(plan, plan.predicted_seconds / 5, share=0.2)[1] is None
    assert _cold(model).scale == ()


def test_a_small_miss_in_seconds_changes_nothing_however_large_its_ratio():
    # A tiny search predicted at a few tens of ms and timed at three times that is
    # noise: scaling the engine by it would move every later, larger search.
    model = LearnedCosts()
    plan = search(costs=_cold(model), probe_seconds=1e-4)
    assert plan.predicted_seconds < 0.2
    assert model.learn(plan, plan.predicted_seconds * 3)[1] is None
    assert _cold(model).scale == ()


def test_fit_time_learned_from_a_timed_fit_predicts_the_next_fit():
    model = LearnedCosts()
    forest = RandomForestClassifier(n_estimators=100, n_jobs=-1)
    big = InputProfile("numpy", (10**6, 20), 160 * 10**6)
    first = plan_fit(forest, big, REMOTE, max_gather_bytes=GB, costs=_cold(model))
    assert [q.seconds for q in first.predictions] == [None, None]
    assert "no fit of this estimator type timed" in str(first.predictions[0])
    # 100 trees on 160 MB took 60 s on 2 cores: 120 s of work, 1.2 s a tree.
    model.learn_fit_rate(forest, "forest", plan_fit(forest, big, LAPTOP, max_gather_bytes=GB),
                         60.0)
    costs = _cold(model)
    nxt = plan_fit(forest, big, REMOTE, max_gather_bytes=GB, costs=costs)
    local, dask = nxt.predictions
    assert local.seconds == pytest.approx(60.0)
    assert nxt.executor == "dask" and dask.seconds < 10
    assert "the cluster is predicted fastest" in nxt.reason
    # A 40 kB input is predicted to take milliseconds: not worth the cluster's overheads.
    small = InputProfile("numpy", (500, 10), 40_000)
    assert plan_fit(forest, small, REMOTE, max_gather_bytes=GB, costs=costs).executor == "loky"


def test_search_records_predictions_and_actual_time_and_matches_gridsearchcv():
    X, y = make_classification(300, 4, random_state=0)
    grid = {"C": [0.1, 1.0, 10.0]}
    search_ = DistributedSearchCV(LogisticRegression(), grid, cv=3).fit(X, y)
    plan = search_.plan_
    assert {q.engine for q in plan.predictions} >= {"sequential", "loky"}
    chosen = next(q for q in plan.predictions if q.engine == plan.executor)
    assert chosen.actual_seconds == plan.actual_seconds > 0
    assert "actual" in plan.predictions_table()
    ref = GridSearchCV(LogisticRegression(), grid, cv=3).fit(X, y)
    np.testing.assert_array_equal(search_.cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"])


def test_wrong_prediction_is_reported_in_verbose_mode(capsys):
    X, y = make_classification(200, 4, random_state=0)
    # A correction that makes the in-process prediction 1000x too low: the actual time
    # (6 fits of 0.15 s) is far off, by more than WRONG_BY_SECONDS too, reported, and
    # corrected.
    from .counting import CountingClassifier

    learned = _process_default(scale={("search", "sequential"): 1e-3})
    DistributedSearchCV(CountingClassifier(sleep=0.15), {"C": [0.1, 1.0]}, cv=3,
                        verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "[distsk] cost model: sequential (search) predicted" in out
    assert learned.costs(measure=False).factor("sequential") > 1e-2


def test_fit_and_explain_show_predictions_once_a_fit_was_timed():
    learned = _process_default()
    X, y = make_classification(500, 8, random_state=0)
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    est = DistributedEstimator(forest).fit(X, y)
    assert est.plan_.actual_seconds > 0 and est.plan_.predictions[0].engine == "sequential"
    plan = explain(forest, X)
    assert plan.predicted_seconds is not None and "predicted:" in plan.reason
    assert learned.costs(measure=False).fit_rates  # the fit taught the process default


def test_overheads_are_measured_once_per_cluster_and_warm_pool(client):
    from joblib import Parallel, delayed

    from distsk._compat import loky_workers

    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(4))  # a warm pool
    assert loky_workers() >= 1
    model = LearnedCosts()  # nothing measured yet
    assert model.overheads.dask(client, measure=False) is None
    costs = model.costs(client)
    assert set(costs.measured) >= {"loky overheads", "Dask overheads"}
    assert 0 < costs.dask_fixed_seconds < 5 and 0 < costs.loky_fixed_seconds < 5
    measured = model.overheads.dask(client, measure=False)
    loky = model.overheads.loky(2, measure=False)
    model.costs(client)
    assert model.overheads.dask(client, measure=False) is measured  # not again
    assert model.overheads.loky(2, measure=False) is loky


def test_bandwidth_seen_replaces_the_default():
    model = LearnedCosts()
    model.observe_transfer(100 * 2**20, 0.5)
    assert _cold(model).bandwidth == pytest.approx(200 * 2**20)
    model.observe_transfer(1000, 1.0)  # too small to tell
    assert _cold(model).bandwidth == pytest.approx(200 * 2**20)


def test_subsample_keeps_an_eighth_of_the_rows_and_every_class():
    from distsk._decide.probe import subsample

    X, y = make_classification(1600, 4, weights=[0.9], random_state=0)
    Xs, ys = subsample(LogisticRegression(), X, y, 8)
    assert Xs.shape == (200, 4) and set(ys) == {0, 1}
    assert abs(ys.mean() - y.mean()) < 0.01  # stratified
    assert subsample(LogisticRegression(), X[:1000], y[:1000], 8) is None  # too few rows


def test_probe_on_a_subsample_decides_when_the_choice_is_clear(tmp_path):
    from .counting import CountingClassifier, fits

    # 40 fits that sleep 50 ms: parallel wins whatever the probe's error, so the probe on
    # 200 of the 1,600 rows decides and no probe runs on all rows.
    X, y = make_classification(1600, 4, random_state=0)
    counter = tmp_path / "fits.txt"
    search = DistributedSearchCV(CountingClassifier(counter=str(counter), sleep=0.05),
                                 {"C": [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]}, cv=5,
                                 backend="auto").fit(X, y)
    assert search.plan_.executor != "sequential"
    assert "one probe fit on 1/8 of the rows" in search.plan_.reason
    rows = [int(line.split()[1]) for line in fits(counter)]
    assert 200 in rows and 1600 not in rows[:-1]  # the last one is the refit


def test_a_fresh_learned_costs_knows_nothing_and_the_default_is_replaced():
    taught = LearnedCosts(scale={("fit", "dask"): 4.0}, fit_rates={("X", False): 1e-9},
                          bandwidth=1e6)
    costs = _cold(taught)
    assert (costs.factor("dask", "fit"), costs.fit_rate(("X", False)), costs.bandwidth) == (
        4.0, 1e-9, 1e6)
    assert _cold(LearnedCosts()) == Costs()  # the defaults, nothing measured
    # The public face reads learned_costs() at each use: replacing the default (as
    # tests/conftest.py does) reaches it.
    from distsk._decide.learned import learned_costs

    use_learned_costs(taught)
    assert learned_costs() is taught and learned_costs().costs(measure=False).bandwidth == 1e6
    fresh = _process_default()
    assert learned_costs() is fresh and learned_costs().costs(measure=False).bandwidth != 1e6
