"""The dask-ml engine's solver for LogisticRegression and PoissonRegressor (#12): chosen
by the number of features and whether the data exceed the cluster's memory, named in
``plan_.reason``, and whichever it is, sklearn's model is fitted.

Tolerance: Newton stops when no coefficient moves by more than ``tol`` (1e-4 by
default); the last step is taken in Newton's quadratic phase, so the coefficients are
within ~1e-8 of the optimum (measured 3e-8 on these data). They are compared with
sklearn's optimum (lbfgs at tol=1e-10) to rtol=1e-6, atol=1e-6. L-BFGS is compared to
1e-3, as in test_translations.py (its tol is on the summed loss's gradient).
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, PoissonRegressor

from distsk import DistributedEstimator, explain

da = pytest.importorskip("dask.array", reason="needs the distsk[dask] extra")
pytest.importorskip("dask_ml", reason="needs the distsk[dask-ml] extra")

from distsk._decide.dask_ml_rules import (  # noqa: E402
    NEWTON_HESSIAN_MEMORY_FRACTION,
    NEWTON_MAX_FEATURES,
    choose_solver,
)

pytestmark = pytest.mark.timeout(180)

rng = np.random.RandomState(0)
X = rng.normal(size=(2000, 4)) * [5.0, 3.0, 1.0, 0.5] + [1.0, -2.0, 0.0, 3.0]
w = np.array([0.3, -0.2, 0.5, 0.1])
Y = {
    "binary": (X @ w + rng.normal(size=2000) > 0).astype(int),
    "counts": rng.poisson(np.exp(0.1 * (X @ w))).astype(float),
}
MB = 1_000_000


def big(est, client):
    """Over a gather limit of 0 bytes: the dask-ml engine, as backend='auto' chooses it."""
    return DistributedEstimator(est, max_gather_bytes=0, client=client)


def optimum(est, Xn, yn):
    return clone(est).set_params(tol=1e-10, max_iter=10_000).fit(Xn, yn)


GB = 1_000 * MB
HESSIANS_1000 = 9 * 8 * 1001 ** 2  # Newton's partial Hessians in flight at 1,000 features


@pytest.mark.parametrize(("name", "features", "data", "memory", "workers", "solver"), [
    ("LogisticRegression", 20, 160 * MB, 200 * MB, 2, "newton"),  # spills
    ("LogisticRegression", 20, 160 * MB, 4 * GB, 2, "newton"),  # held
    ("LogisticRegression", NEWTON_MAX_FEATURES, 160 * MB, 2 * GB, 2, "newton"),
    ("LogisticRegression", NEWTON_MAX_FEATURES + 1, 160 * MB, 2 * GB, 2, "lbfgs"),
    ("PoissonRegressor", 20, 160 * MB, 200 * MB, 2, "newton"),
    ("PoissonRegressor", NEWTON_MAX_FEATURES + 1, 160 * MB, 4 * GB, 2, "lbfgs"),
    # The Hessians against a worker's memory (the cluster's memory / workers):
    ("LogisticRegression", 1000, 160 * MB,
     int(2 * HESSIANS_1000 / NEWTON_HESSIAN_MEMORY_FRACTION), 2, "newton"),
    ("LogisticRegression", 1000, 160 * MB,
     int(2 * HESSIANS_1000 / NEWTON_HESSIAN_MEMORY_FRACTION) - 2, 2, "lbfgs"),
    ("LogisticRegression", 1000, 160 * MB, 0, 0, "newton"),  # memory unknown
    ("LogisticRegression", None, 160 * MB, 4 * GB, 2, "lbfgs"),  # features unknown
])
def test_solver_rule(name, features, data, memory, workers, solver):
    choice = choose_solver(name, features, data, memory, workers)
    assert choice.solver == solver
    assert ("exceed the cluster's memory" in choice.reason) == (
        features is not None and bool(memory) and data > memory)


def test_rule_says_what_it_does_not_know():
    assert "the data's size unknown" in choose_solver("LogisticRegression", 20, None, GB, 2).reason
    assert "memory unknown" in choose_solver("LogisticRegression", 20, 160 * MB, 0, 0).reason
    assert "the data fit" in choose_solver("LogisticRegression", 20, 160 * MB, GB, 2).reason


def test_rule_applies_to_glms_only():
    for name in ("KMeans", "PCA", "LinearRegression", "StandardScaler", None):
        assert choose_solver(name, 4, 100, 1_000, 1) is None


def test_plan_reason_names_the_solver(client):
    dX = da.from_array(X, chunks=(500, 4))
    reason = explain(big(LogisticRegression(), client), dX).reason
    assert "Solver Newton" in reason and "4 features <=" in reason
    wide = da.zeros((100, NEWTON_MAX_FEATURES + 1), chunks=(50, -1))
    assert "Solver L-BFGS" in explain(big(PoissonRegressor(), client), wide).reason
    assert "Solver" not in explain(big(KMeans(), client), dX).reason


@pytest.mark.parametrize("est", [
    LogisticRegression(), LogisticRegression(C=0.001), LogisticRegression(C=np.inf),
    LogisticRegression(fit_intercept=False, C=0.01), LogisticRegression(tol=1e-6),
    PoissonRegressor(), PoissonRegressor(alpha=0.0), PoissonRegressor(alpha=0.1,
                                                                      fit_intercept=False),
], ids=repr)
def test_newton_fits_sklearns_model(client, est):
    # C=0.001 and uncentred features: a penalised intercept would move it far (#12).
    kind = "binary" if isinstance(est, LogisticRegression) else "counts"
    dX, dy = da.from_array(X, chunks=(500, 4)), da.from_array(Y[kind], chunks=500)
    ours = big(est, client).fit(dX, dy)
    assert "Solver Newton" in ours.plan_.reason
    ref = optimum(est, X, Y[kind])
    assert_allclose(ours.estimator_.coef_, ref.coef_, rtol=1e-6, atol=1e-6)
    assert_allclose(ours.estimator_.intercept_, ref.intercept_, rtol=1e-6, atol=1e-6)
    assert_allclose(ours.estimator_.predict(X), ref.predict(X), rtol=1e-6)
    assert 1 <= np.max(ours.estimator_.n_iter_) < 20


def test_lbfgs_above_the_threshold_fits_sklearns_model(client):
    p = NEWTON_MAX_FEATURES + 1
    # Centred: uncentred, the intercept's direction is nearly flat and L-BFGS stops (at
    # its tol, as sklearn's would) 0.4% from the optimum's intercept.
    Xw = np.random.RandomState(1).normal(size=(3_000, p))
    yw = (Xw @ np.linspace(-0.1, 0.1, p) + rng.normal(size=3_000) > 0).astype(int)
    est = LogisticRegression(C=0.1)
    ours = big(est, client).fit(
        da.from_array(Xw, chunks=(500, -1)), da.from_array(yw, chunks=500))
    assert "Solver L-BFGS" in ours.plan_.reason
    ref = optimum(est, Xw, yw)
    assert_allclose(ours.estimator_.coef_, ref.coef_, rtol=1e-3, atol=1e-3)
    assert_allclose(ours.estimator_.intercept_, ref.intercept_, rtol=1e-3, atol=1e-3)


def test_newton_halves_a_step_that_overshoots(client):
    # From zero, Newton's first full steps overshoot these counts (up to e^10): dask-glm's
    # plain newton overflows into a singular system (LinAlgError); halving reaches
    # sklearn's optimum.
    r = np.random.RandomState(0)
    Xo = r.uniform(0, 3, size=(500, 1))
    yo = r.poisson(np.exp(5 * Xo[:, 0] - 5)).astype(float)
    X1 = np.c_[Xo, np.ones(500)]
    full_step = np.linalg.solve(X1.T @ X1, X1.T @ (yo - 1))  # from zero: mu = 1

    def loss(beta):
        with np.errstate(over="ignore"):  # the full step's exp overflows to inf
            return np.sum(np.exp(X1 @ beta) - yo * (X1 @ beta))

    assert loss(full_step) > loss(np.zeros(2))  # the premise: a full step overshoots
    est = PoissonRegressor(alpha=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning reaches the user either
        ours = big(est, client).fit(da.from_array(Xo, chunks=100), da.from_array(yo, chunks=100))
    assert "Solver Newton" in ours.plan_.reason
    ref = optimum(est, Xo, yo)
    assert_allclose(ours.estimator_.coef_, ref.coef_, rtol=1e-6)
    assert_allclose(ours.estimator_.intercept_, ref.intercept_, rtol=1e-6)


def test_newton_out_of_iterations_warns_as_sklearn(client):
    dX, dy = da.from_array(X, chunks=(500, 4)), da.from_array(Y["binary"], chunks=500)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        big(LogisticRegression(max_iter=2), client).fit(dX, dy)
    with pytest.warns(ConvergenceWarning):
        LogisticRegression(max_iter=2).fit(X, Y["binary"])  # sklearn warns the same type


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cluster_memory_moves_the_rule(client):
    """The same fit on a cluster with GBs per worker (Newton) and on one whose worker's
    memory limit (4 MB) cannot take Newton's Hessians at 150 features (L-BFGS, data
    spilled); both fit sklearn's model."""
    from distributed import Client

    from benchmarks.spilling import spilling_cluster

    p = 150  # 9 partial Hessians: 1.6 MB, over 25% of 4 MB
    Xw = np.random.RandomState(2).normal(size=(4_000, p)) + 0.5  # 4.8 MB
    yw = (Xw @ np.linspace(-0.1, 0.1, p) + rng.normal(size=4_000) > 0).astype(int)
    dX, dy = da.from_array(Xw, chunks=(500, -1)), da.from_array(yw, chunks=500)
    ref = optimum(LogisticRegression(), Xw, yw)
    roomy = big(LogisticRegression(), client).fit(dX, dy)
    assert "Solver Newton" in roomy.plan_.reason
    lc = spilling_cluster(n_workers=1, memory_limit="4MB")
    with lc, Client(lc, set_as_default=False) as small:
        tight = big(LogisticRegression(), small).fit(dX, dy)
    assert "Solver L-BFGS" in tight.plan_.reason
    assert "Hessians" in tight.plan_.reason and "exceed the cluster's memory" in tight.plan_.reason
    assert_allclose(roomy.estimator_.coef_, ref.coef_, rtol=1e-6, atol=1e-6)
    assert_allclose(tight.estimator_.coef_, ref.coef_, rtol=1e-3, atol=1e-3)


def test_newton_takes_blocks_split_by_columns_and_unaligned_labels(client):
    # Newton's tasks need whole rows and y cut like X: both are rechunked first.
    dX = da.from_array(X, chunks=(300, 2))
    dy = da.from_array(Y["binary"], chunks=700)
    ours = big(LogisticRegression(), client).fit(dX, dy)
    assert "Solver Newton" in ours.plan_.reason
    ref = optimum(LogisticRegression(), X, Y["binary"])
    assert_allclose(ours.estimator_.coef_, ref.coef_, rtol=1e-6, atol=1e-6)
