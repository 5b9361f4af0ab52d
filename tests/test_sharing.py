"""Shared work in searches: pipeline prefixes fit once per fold, ensembles fit once at the
largest size. Every cv_results_ entry (timings aside) equals sklearn's unshared search,
on every engine; each fallback is exercised."""

import numpy as np
import pytest
from scipy.stats import randint
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from distsk import DistributedSearchCV
from distsk._units.sharing import plan_units

from ._search_helpers import assert_same_search

X, y = make_classification(n_samples=150, n_features=6, n_informative=4, random_state=0)
Xr = X.copy()
yr = X[:, 0] * 2 + np.random.RandomState(0).normal(size=len(X))


@pytest.fixture(params=["sequential", "loky", "dask"])
def engine(request):
    if request.param == "dask":
        return "dask", request.getfixturevalue("client")
    return request.param, None


def compare(engine, estimator, grid, Xd=X, yd=y, **kw):
    backend, client = engine
    ref = GridSearchCV(estimator, grid, cv=3, **kw).fit(Xd, yd)
    ours = DistributedSearchCV(estimator, grid, cv=3, backend=backend, client=client, **kw)
    ours.fit(Xd, yd)
    assert_same_search(ours, ref)
    return ours


PIPE_GRID = {"nystroem__gamma": [0.1, 0.5], "logisticregression__C": [0.1, 1.0, 10.0]}


def nystroem_pipe(random_state=0):
    return make_pipeline(StandardScaler(), Nystroem(n_components=20, random_state=random_state),
                         LogisticRegression())


def test_pipeline_prefix_is_fit_once_per_fold(engine):
    ours = compare(engine, nystroem_pipe(), PIPE_GRID)
    # 2 prefixes x 3 folds fit once each (vs 18 full pipeline fits).
    assert ours.n_fits_performed_ == 2 * 3


def test_column_transformer_feature_union_and_passthrough(engine):
    pre = ColumnTransformer([("scale", StandardScaler(), [0, 1, 2]),
                             ("mm", MinMaxScaler(), [3, 4])], remainder="passthrough")
    union = FeatureUnion([("pca", PCA(n_components=2, random_state=0)), ("id", "passthrough")])
    pipe = Pipeline([("pre", pre), ("skip", "passthrough"), ("union", union),
                     ("lr", LogisticRegression())])
    grid = {"union__pca__n_components": [2, 3], "lr__C": [0.1, 1.0]}
    ours = compare(engine, pipe, grid)
    assert ours.n_fits_performed_ == 2 * 3


def test_unseeded_prefix_is_not_shared():
    ours = DistributedSearchCV(nystroem_pipe(random_state=None), PIPE_GRID, cv=3,
                               backend="sequential").fit(X, y)
    assert ours.n_fits_performed_ == 18


def test_fit_params_fall_back_to_ordinary_fits(engine):
    w = np.random.RandomState(0).uniform(0.5, 2, size=len(y))
    backend, client = engine
    grid = {"logisticregression__C": [0.1, 1.0]}
    params = {"logisticregression__sample_weight": w}
    ref = GridSearchCV(nystroem_pipe(), grid, cv=3).fit(X, y, **params)
    ours = DistributedSearchCV(nystroem_pipe(), grid, cv=3, backend=backend,
                               client=client).fit(X, y, **params)
    assert_same_search(ours, ref)
    assert ours.n_fits_performed_ == 6


@pytest.mark.parametrize(
    "estimator, grid",
    [
        (RandomForestClassifier(random_state=0, max_depth=4), {"n_estimators": [3, 7, 12]}),
        (RandomForestClassifier(random_state=1, class_weight="balanced_subsample"),
         {"n_estimators": [4, 8], "max_features": [1, 3]}),
        (GradientBoostingClassifier(random_state=0, subsample=0.7),
         {"n_estimators": [5, 10, 20], "learning_rate": [0.1, 0.3]}),
        (HistGradientBoostingClassifier(random_state=0, early_stopping=False),
         {"max_iter": [5, 10, 15]}),
    ],
    ids=["rf", "rf-balanced", "gb-subsample", "hgb"],
)
def test_ensemble_sizes_are_fit_once(engine, estimator, grid):
    ours = compare(engine, estimator, grid)
    sizes = len(grid.get("n_estimators", grid.get("max_iter")))
    n_candidates = int(np.prod([len(v) for v in grid.values()]))
    assert ours.n_fits_performed_ == n_candidates * 3 // sizes


def test_ensemble_regressor_with_train_score(engine):
    ours = compare(engine, ExtraTreesRegressor(random_state=0), {"n_estimators": [2, 5]},
                   Xd=Xr, yd=yr, return_train_score=True)
    assert ours.n_fits_performed_ == 3


def test_best_estimator_is_an_ordinary_refit():
    ours = DistributedSearchCV(RandomForestClassifier(random_state=0),
                               {"n_estimators": [3, 6]}, cv=3, backend="sequential").fit(X, y)
    assert type(ours.best_estimator_) is RandomForestClassifier
    ref = RandomForestClassifier(random_state=0, **ours.best_params_).fit(X, y)
    np.testing.assert_array_equal(ours.predict_proba(X), ref.predict_proba(X))


@pytest.mark.parametrize(
    "estimator, kw",
    [
        (RandomForestClassifier(random_state=0, oob_score=True), {}),
        (RandomForestClassifier(random_state=None), {}),
        (RandomForestClassifier(random_state=0, warm_start=True), {}),
        (GradientBoostingClassifier(random_state=0, n_iter_no_change=2), {}),
        (HistGradientBoostingClassifier(random_state=0, early_stopping=True), {}),
        (RandomForestClassifier(random_state=0),
         {"scoring": lambda est, X, y: float(len(est.estimators_))}),
    ],
    ids=["oob", "unseeded", "warm-start", "gb-early-stop", "hgb-early-stop", "custom-scorer"],
)
def test_fallbacks_fit_every_candidate(estimator, kw):
    param = "max_iter" if isinstance(estimator, HistGradientBoostingClassifier) else "n_estimators"
    grid = {param: [3, 6]}
    ours = DistributedSearchCV(estimator, grid, cv=3, backend="sequential", **kw).fit(X, y)
    assert ours.n_fits_performed_ == 6
    if estimator.random_state is not None:
        assert_same_search(ours, GridSearchCV(estimator, grid, cv=3, **kw).fit(X, y))


def test_randomized_search_shares_sizes(engine):
    backend, client = engine
    dists = {"n_estimators": [5, 10], "max_depth": randint(2, 4)}
    kw = dict(n_iter=6, random_state=0, cv=3)
    ref = RandomizedSearchCV(RandomForestClassifier(random_state=0), dists, **kw).fit(X, y)
    ours = DistributedSearchCV(RandomForestClassifier(random_state=0), param_distributions=dists,
                               backend=backend, client=client, **kw).fit(X, y)
    assert_same_search(ours, ref)
    assert ours.n_fits_performed_ < 18


def test_units_group_by_fold_and_other_parameters():
    from sklearn.base import clone
    from sklearn.model_selection import KFold, ParameterGrid

    est = RandomForestClassifier(random_state=0)
    folds = list(KFold(2).split(X))
    items = [
        (None, (clone(est), X, y), dict(train=tr, test=te, parameters=p, split_progress=(s, 2),
                                         fit_params={}, scorer=None))
        for p in ParameterGrid({"n_estimators": [2, 4], "max_depth": [1, 2]})
        for s, (tr, te) in enumerate(folds)
    ]
    from sklearn.metrics import check_scoring

    for _, _, kw in items:
        kw["scorer"] = check_scoring(est)
    units = plan_units(items)
    assert sorted(len(u.indices) for u in units) == [2, 2, 2, 2]
    assert all(u.kind == "ensemble" for u in units)
    assert all(len({items[i][2]["split_progress"][0] for i in u.indices}) == 1 for u in units)


def test_loky_after_sklearns_own_loky_with_memmapped_data():
    # X over joblib's 1 MB memmapping threshold, on the loky pool sklearn's own search
    # just used (and cleaned up after): distsk's arrays must go to a live memmap folder.
    Xb, yb = make_classification(n_samples=3000, n_features=50, random_state=0)
    grid = {"C": [0.1, 1.0]}
    ref = GridSearchCV(LogisticRegression(), grid, cv=3, n_jobs=-1).fit(Xb, yb)
    ours = DistributedSearchCV(LogisticRegression(), grid, cv=3, backend="loky").fit(Xb, yb)
    assert_same_search(ours, ref)
