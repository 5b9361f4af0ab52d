"""xgboost engine: train with xgboost.dask where the data lives, return a plain model.

xgboost is imported only when this engine runs.
"""

from __future__ import annotations

from .._cluster.data import compute_all
from .._compat import client_as_current
from .base import ExecutionContext, Executor

__all__ = ["XGBoostExecutor"]


def _require_xgboost():
    try:
        import xgboost.dask  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "This fit needs xgboost. Install it with `pip install xgboost` (the "
            'distsk[xgboost] extra: `pip install ".[xgboost]"` in the distsk checkout).'
        ) from exc


class XGBoostExecutor(Executor):
    name = "xgboost"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        _require_xgboost()
        import xgboost
        from xgboost import dask as dxgb

        from .dask_ml import _as_dask_array, persisted

        dask_cls = {
            xgboost.XGBClassifier: dxgb.DaskXGBClassifier,
            xgboost.XGBRegressor: dxgb.DaskXGBRegressor,
            xgboost.XGBRanker: dxgb.DaskXGBRanker,
        }.get(type(estimator))
        if dask_cls is None:
            raise TypeError(
                f"{type(estimator).__name__} has no xgboost.dask counterpart; use "
                "XGBClassifier, XGBRegressor or XGBRanker, or gather the data."
            )
        if not hasattr(X, "dask"):
            X = _as_dask_array(X)
        if y is not None and not hasattr(y, "dask"):
            y = _as_dask_array(y)
        X, y = persisted(ctx.client, X, y)  # the boosting rounds read it where it lives
        X, y = _check_input(estimator, X, y)
        model = dask_cls(**estimator.get_params())
        with client_as_current(ctx.client):
            model.fit(X, y, **fit_params)
        # A plain model: same booster, same parameters, picklable, no cluster needed.
        raw = model.get_booster().save_raw(raw_format="ubj")
        plain = type(estimator)(**estimator.get_params())
        plain.load_model(bytearray(raw))
        return plain


def _check_input(estimator, X, y, found=None):
    """Raise what the plain xgboost model's ``fit`` raises, before xgboost.dask starts.

    xgboost.dask does not check y's classes or length itself, and bad values fail in
    whichever worker holds them while the others report a broken allreduce (a C++
    trace). Classes, infinite X and NaN or infinite y are checked here (one pass) and
    raised by the plain model itself on a two-row stand-in with the same defect, so the
    error is its own; a length mismatch gets xgboost's error type with a sentence.
    """
    import numpy as np
    import xgboost

    if y is None:
        return X, y
    if hasattr(X, "compute_chunk_sizes") and any(np.isnan(n) for n in X.shape):
        X = X.compute_chunk_sizes()
    if hasattr(y, "compute_chunk_sizes") and any(np.isnan(n) for n in y.shape):
        y = y.compute_chunk_sizes()
    n_x, n_y = X.shape[0], y.shape[0]
    if isinstance(n_x, int | np.integer) and isinstance(n_y, int | np.integer) and n_x != n_y:
        raise xgboost.core.XGBoostError(
            f"Invalid size for `label`: y has {n_y} rows and X has {n_x}; pass one label "
            "per row of X (were X and y filtered or split the same way?)."
        )
    import dask.array as da

    plain = type(estimator)(**estimator.get_params())
    n_features = len(X.columns) if hasattr(X, "columns") else (X.shape[1] if X.ndim == 2 else 1)
    classifier = isinstance(estimator, xgboost.XGBClassifier)
    x_inf = isinstance(X, da.Array) and X.dtype.kind == "f" and plain.missing != np.inf
    y_bad = isinstance(y, da.Array) and y.dtype.kind == "f"
    # One pass over the data for every check.
    classes, x_has_inf, y_has_nan, y_has_inf = compute_all(
        (y.unique() if hasattr(y, "unique") else da.unique(y)) if classifier else None,
        da.isinf(X).any() if x_inf else False,
        da.isnan(y).any() if y_bad else False, da.isinf(y).any() if y_bad else False,
    )
    if classifier:
        classes = np.unique(np.asarray(classes))
        if found is not None:  # the caller's dict receives the classes of y
            found["classes"] = classes
        expected = np.arange(len(classes))
        if classes.shape != expected.shape or not (classes == expected).all():
            # The plain model checks classes first thing in fit: its own ValueError.
            plain.fit(np.zeros((len(classes), n_features)), classes)
    # Infinite X, NaN or infinite y fail in whichever worker holds them first, while the
    # others report a broken allreduce: raise the plain model's error instead.
    if x_has_inf or y_has_nan or y_has_inf:
        X1, y1 = np.zeros((2, n_features)), np.array([0.0, 1.0])
        if x_has_inf:
            X1[0, 0] = np.inf
        y1[0] = np.nan if y_has_nan else np.inf if y_has_inf else 0.0
        plain.fit(X1, y1)
    return X, y
