"""Every kind of input for X, y, groups and sample_weight, on every engine, against sklearn
on the computed data: numpy, pandas DataFrame and Series, a list, scipy.sparse, dask array,
dask DataFrame / Series and ``dask.delayed``, mixed as a user may mix them (#21).

The outcome compared is the whole one: ``cv_results_`` (timing keys aside) and the refit
model's predictions, or the exception's type and message when sklearn raises.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline

from distsk import DistributedEstimator, DistributedSearchCV

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

N = 60
KINDS_2D = ["numpy", "pandas", "list", "sparse", "dask-array", "dask-dataframe", "delayed"]
KINDS_1D = ["numpy", "series", "dataframe", "list", "sparse", "dask-array", "dask-series",
            "delayed"]
GRID = {"C": [0.1, 1.0]}


def _data():
    rng = np.random.RandomState(0)
    X = rng.randn(N, 4)
    y = rng.randint(0, 3, N)
    groups = np.arange(N) % 6 + 10  # ids unlike the labels: a swap cannot pass unseen
    weight = rng.uniform(0.5, 2.0, N)
    return X, y, groups, weight


def as_kind(value, kind):
    """``value`` (a numpy array) as the input kind named, and what sklearn is given."""
    if kind == "numpy":
        return value, value
    if kind in ("pandas", "dataframe"):
        frame = pd.DataFrame(value if value.ndim == 2 else value[:, None])
        frame.columns = [f"c{i}" for i in range(frame.shape[1])]
        return frame, frame
    if kind == "series":
        return pd.Series(value, name="s"), pd.Series(value, name="s")
    if kind == "list":
        return value.tolist(), value.tolist()
    if kind == "sparse":
        m = sp.csr_matrix(value if value.ndim == 2 else value[:, None])
        return m, m
    if kind == "dask-array":
        return da.from_array(value, chunks=25), value
    if kind == "dask-dataframe":
        frame, _ = as_kind(value, "pandas")
        return dd.from_pandas(frame, npartitions=3), frame
    if kind == "dask-series":
        return dd.from_pandas(pd.Series(value, name="s"), npartitions=3), pd.Series(value,
                                                                                   name="s")
    if kind == "delayed":
        return dask.delayed(value), value
    raise ValueError(kind)


def _outcome(fit, *args):
    """What ``fit(*args)`` gives: its result, or its exception's type and message
    (tracebacks of failed fits, which name files and lines, left out)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", fit(*args)
    except Exception as exc:  # noqa: BLE001 - the exception itself is what is compared
        message = re.split(r"\n\s*Below are more details", str(exc))[0]
        return type(exc).__name__, message


def _results(search):
    return {k: v for k, v in search.cv_results_.items() if "time" not in k}


def _assert_same(got, want, where):
    assert got[0] == want[0], f"{where}: distsk {got} where sklearn {want}"
    if got[0] != "ok":
        assert got[1] == want[1], where
        return
    (res, pred), (ref_res, ref_pred) = got[1], want[1]
    assert res.keys() == ref_res.keys(), where
    for k in ref_res:
        np.testing.assert_array_equal(np.asarray(res[k], dtype=object),
                                      np.asarray(ref_res[k], dtype=object), err_msg=where)
    np.testing.assert_array_equal(pred, ref_pred, err_msg=where)


def _combinations(x_kind):
    """Every y kind with this X kind; groups and sample_weight cycle through every kind
    (over the X kinds, each meets every X kind and every y kind)."""
    i = KINDS_2D.index(x_kind)
    for j, y_kind in enumerate(KINDS_1D):
        yield y_kind, KINDS_1D[(i + j) % len(KINDS_1D)], KINDS_1D[(i + 2 * j + 1) % len(KINDS_1D)]


def _check_search(x_kind, backend, client):
    X, y, groups, weight = _data()
    for y_kind, g_kind, w_kind in _combinations(x_kind):
        (Xd, Xs), (yd, ys) = as_kind(X, x_kind), as_kind(y, y_kind)
        (gd, gs), (wd, ws) = as_kind(groups, g_kind), as_kind(weight, w_kind)
        where = f"X {x_kind}, y {y_kind}, groups {g_kind}, sample_weight {w_kind}, {backend}"

        def ours(X_, y_, g_, w_):
            search = DistributedSearchCV(LogisticRegression(), GRID, cv=GroupKFold(3),
                                         backend=backend, client=client)
            search.fit(X_, y_, groups=g_, sample_weight=w_)
            return _results(search), search.predict(X)

        def sklearn(X_, y_, g_, w_):
            search = GridSearchCV(LogisticRegression(), GRID, cv=GroupKFold(3))
            search.fit(X_, y_, groups=g_, sample_weight=w_)
            return _results(search), search.predict(X)

        _assert_same(_outcome(ours, Xd, yd, gd, wd), _outcome(sklearn, Xs, ys, gs, ws), where)


def _check_estimator(x_kind, backend, client):
    X, y, _, weight = _data()
    for y_kind, _, w_kind in _combinations(x_kind):
        (Xd, Xs), (yd, ys) = as_kind(X, x_kind), as_kind(y, y_kind)
        wd, ws = as_kind(weight, w_kind)
        where = f"X {x_kind}, y {y_kind}, sample_weight {w_kind}, {backend}"

        def ours(X_, y_, w_):
            est = DistributedEstimator(LogisticRegression(), backend=backend, client=client)
            est.fit(X_, y_, sample_weight=w_)
            return {"coef": est.estimator_.coef_}, est.predict(X)

        def sklearn(X_, y_, w_):
            est = LogisticRegression().fit(X_, y_, sample_weight=w_)
            return {"coef": est.coef_}, est.predict(X)

        _assert_same(_outcome(ours, Xd, yd, wd), _outcome(sklearn, Xs, ys, ws), where)


@pytest.mark.parametrize("x_kind", KINDS_2D)
def test_search_in_process_equals_sklearn_on_every_input_kind(x_kind):
    _check_search(x_kind, "sequential", None)


@pytest.mark.parametrize("x_kind", KINDS_2D)
def test_estimator_in_process_equals_sklearn_on_every_input_kind(x_kind):
    _check_estimator(x_kind, "sequential", None)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["loky", "dask"])
@pytest.mark.parametrize("x_kind", KINDS_2D)
def test_search_equals_sklearn_on_every_input_kind_and_engine(client, backend, x_kind):
    _check_search(x_kind, backend, client)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["loky", "dask"])
@pytest.mark.parametrize("x_kind", KINDS_2D)
def test_estimator_equals_sklearn_on_every_input_kind_and_engine(client, backend, x_kind):
    _check_estimator(x_kind, backend, client)


@pytest.mark.parametrize("backend", ["sequential", "loky", "dask"])
def test_dask_x_delayed_y_dask_groups_fit_the_labels_not_the_groups(client, backend):
    """The case found: dask.compute returned y and groups swapped (dask 2026.8.0)."""
    X, y, groups, _ = _data()
    with client.as_current():
        search = DistributedSearchCV(LogisticRegression(), GRID, cv=GroupKFold(3),
                                     backend=backend, client=client)
        search.fit(da.from_array(X, chunks=25), dask.delayed(y),
                   groups=da.from_array(groups, chunks=25))
    ref = GridSearchCV(LogisticRegression(), GRID, cv=GroupKFold(3)).fit(X, y, groups=groups)
    np.testing.assert_array_equal(search.best_estimator_.classes_, [0, 1, 2])
    _assert_same(("ok", (_results(search), search.predict(X))),
                 ("ok", (_results(ref), ref.predict(X))), backend)


TEXTS = ["the cat sat", "a dog ran", "cats and dogs", "the dog sat", "a cat ran",
         "dogs ran fast", "cats sat still", "the cat and the dog"] * 5


@pytest.mark.parametrize("x_kind", ["series", "list"])
@pytest.mark.parametrize("backend", ["sequential", "loky", "dask"])
def test_text_pipeline_on_a_series_or_list_of_strings(client, backend, x_kind):
    """A pandas Series as X crashed the profile (#21): `Series.memory_usage` is an int."""
    texts = pd.Series(TEXTS, name="text") if x_kind == "series" else list(TEXTS)
    y = np.array([i % 2 for i in range(len(TEXTS))])
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression())
    grid = {"logisticregression__C": [0.1, 1.0]}
    search = DistributedSearchCV(pipe, grid, cv=3, backend=backend, client=client).fit(texts, y)
    ref = GridSearchCV(pipe, grid, cv=3).fit(texts, y)
    _assert_same(("ok", (_results(search), search.predict(texts))),
                 ("ok", (_results(ref), ref.predict(texts))), backend)
    est = DistributedEstimator(pipe, backend=backend, client=client).fit(texts, y)
    np.testing.assert_array_equal(est.predict(texts), pipe.fit(texts, y).predict(texts))


def test_delayed_inputs_everywhere_dask_arrays_are_taken(client):
    """dask-ml takes dask.delayed X, y and fit parameters; distsk computes them (#21)."""
    X, y, _, weight = _data()
    with client.as_current():
        est = DistributedEstimator(LogisticRegression(), client=client)
        est.fit(dask.delayed(X), dask.delayed(y), sample_weight=dask.delayed(weight))
        ref = LogisticRegression().fit(X, y, sample_weight=weight)
        np.testing.assert_array_equal(est.estimator_.coef_, ref.coef_)
        np.testing.assert_array_equal(est.predict(dask.delayed(X)), ref.predict(X))
        assert est.score(dask.delayed(X), dask.delayed(y)) == ref.score(X, y)
        search = DistributedSearchCV(LogisticRegression(), GRID, cv=3, client=client)
        search.fit(dask.delayed(X), dask.delayed(y))
        np.testing.assert_array_equal(search.predict(dask.delayed(X)),
                                      GridSearchCV(LogisticRegression(), GRID, cv=3)
                                      .fit(X, y).predict(X))


def test_delayed_x_larger_than_the_gather_limit_is_refused_with_the_way_out(client):
    X, y, _, _ = _data()
    with client.as_current():
        est = DistributedEstimator(LogisticRegression(), client=client, max_gather_bytes=100)
        with pytest.raises(ValueError, match=r"X is a dask.delayed whose value holds .*"
                                             r"\(dask.array.from_delayed\)"):
            est.fit(dask.delayed(X), y)


def test_gathering_pairs_each_result_with_its_input_whatever_dask_returns(client):
    """compute_all and gather on mixed arrays, delayed objects, frames and plain values,
    without and with a distributed client."""
    from distsk._cluster.data import compute_all, gather

    values = [da.from_array(np.array([1, 1]), chunks=1), dask.delayed(np.array([2, 2])),
              da.from_array(np.array([3, 3]), chunks=1), np.array([4]),
              dd.from_pandas(pd.Series([5, 5]), npartitions=2), [dask.delayed(6)]]
    want = [[1, 1], [2, 2], [3, 3], [4], [5, 5], [6]]
    for got in (compute_all(*values), gather(*values)):
        assert [list(np.asarray(v)) for v in got] == want
    with client.as_current():
        got = gather(*values)
    assert [list(np.asarray(v)) for v in got] == want
