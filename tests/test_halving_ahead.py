"""No idle rounds: slots left idle at the end of a halving round start the next round's
fits of the candidates ranked best so far; a fit started ahead whose candidate survives
is used (never run again), one whose candidate is eliminated is discarded, and every
result stays sklearn's."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV

from distsk import DistributedHalvingGridSearchCV

from ._search_helpers import assert_same_search
from .counting import CountingClassifier, fits

X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
HALVING_ATTRS = (
    "n_resources_", "n_candidates_", "n_remaining_candidates_", "n_iterations_",
    "n_possible_iterations_", "n_required_iterations_", "min_resources_", "max_resources_",
)
# The best candidate of the first round, whose fits sleep, then six quick ones: on four
# slots its three folds run while the quick fits go through the fourth; then that slot
# is idle, and the best three quick candidates, ranked first, start their next round
# there. When the slow one comes in it outranks the third, whose fits are discarded.
FAST = [1e-5, 1e-4, 1e-3, 0.01, 0.03, 0.3]
GRID = [{"C": [0.1], "sleep": [3.0]}, {"C": FAST}]


@pytest.fixture(scope="module")
def four_threads():
    """A Dask worker process with four threads (the fits sleep or take milliseconds)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=4, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def _engine(request, backend):
    return request.getfixturevalue("four_threads") if backend == "dask" else None


def _compare(ours, ref):
    assert_same_search(ours, ref)
    for attr in HALVING_ATTRS:
        assert getattr(ours, attr) == getattr(ref, attr), attr


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_idle_slots_start_the_next_round_and_results_stay_sklearns(backend, request,
                                                                   tmp_path):
    client = _engine(request, backend)
    ref_counter, counter = str(tmp_path / "sklearn.txt"), str(tmp_path / "distsk.txt")
    ref = HalvingGridSearchCV(CountingClassifier(counter=ref_counter), GRID, cv=3,
                              random_state=0).fit(X, y)
    assert ref.n_candidates_ == [7, 3]
    assert {"C": 0.1, "sleep": 3.0} in list(ref.cv_results_["params"][7:])
    # Workers started and warm first: the quick fits must all end while the slow ones
    # sleep (a cold loky pool on a loaded machine took longer).
    DistributedHalvingGridSearchCV(CountingClassifier(), {"C": FAST}, cv=3, n_jobs=4,
                                   backend=backend, client=client).fit(X, y)
    ours = DistributedHalvingGridSearchCV(
        CountingClassifier(counter=counter), GRID, cv=3, random_state=0, n_jobs=4,
        backend=backend, client=client).fit(X, y)
    _compare(ours, ref)
    # The best quick candidates' next-round fits ran while the slow candidate's folds
    # did, and were used; the third's were discarded once the slow one came in.
    assert ours.n_fits_ahead_ >= 3, (ours.n_fits_ahead_, ours.n_fits_discarded_)
    assert ours.n_fits_discarded_ >= 1, (ours.n_fits_ahead_, ours.n_fits_discarded_)
    assert ours.n_fits_performed_ == sum(ref.n_candidates_) * ref.n_splits_
    # Every fit sklearn made (C and a fingerprint of the rows) was made here, and a fit
    # run ahead was not run again: only discarded ones (and, on Dask, straggler
    # copies) come on top.
    made, sklearns = fits(counter), fits(ref_counter)
    assert set(sklearns) <= set(made)
    extra = (ours.n_fits_discarded_ + getattr(ours, "_n_speculated", 0)
             + ours._n_refits_discarded)  # refits run ahead for a candidate that lost
    assert len(made) - len(sklearns) <= extra, (len(made), len(sklearns), extra)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_unseeded_subsamples_are_never_drawn_ahead(tmp_path):
    # With a RandomState instance, drawing the next round's rows early would take
    # numbers from the user's generator: nothing runs ahead, results stay sklearn's.
    est = CountingClassifier()
    ref = HalvingGridSearchCV(est, GRID, cv=3,
                              random_state=np.random.RandomState(0)).fit(X, y)
    ours = DistributedHalvingGridSearchCV(est, GRID, cv=3, n_jobs=4, backend="loky",
                                          random_state=np.random.RandomState(0)).fit(X, y)
    _compare(ours, ref)
    assert (ours.n_fits_ahead_, ours.n_fits_discarded_) == (0, 0)


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_forest_survivors_grown_ahead_equal_sklearn(backend):
    # resource n_estimators: a survivor's next fit, run ahead, grows this round's model.
    grid = {"max_depth": [2, 4, None], "max_features": [1, 2, "sqrt"]}
    kw = dict(resource="n_estimators", max_resources=27, cv=3, random_state=0)
    ref = HalvingGridSearchCV(RandomForestClassifier(random_state=0), grid, **kw).fit(X, y)
    ours = DistributedHalvingGridSearchCV(RandomForestClassifier(random_state=0), grid,
                                          backend=backend, n_jobs=2, **kw).fit(X, y)
    _compare(ours, ref)
    assert ours.n_fits_performed_ == sum(ref.n_candidates_) * ref.n_splits_
    if backend == "sequential":  # one slot: never idle, nothing runs ahead
        assert (ours.n_fits_ahead_, ours.n_fits_discarded_) == (0, 0)
