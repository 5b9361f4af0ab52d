"""xgboost engine: train with xgboost.dask where the data lives, return a plain model.

xgboost is imported only when this engine runs.
"""

from __future__ import annotations

from ._base import ExecutionContext, Executor

__all__ = ["XGBoostExecutor", "is_xgboost_model"]


def is_xgboost_model(estimator) -> bool:
    return type(estimator).__module__.split(".")[0] == "xgboost"


def _require_xgboost():
    try:
        import xgboost.dask  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            'This fit needs xgboost. Install it with: pip install "distsk[xgboost]"'
        ) from exc


class XGBoostExecutor(Executor):
    name = "xgboost"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        _require_xgboost()
        import xgboost
        from xgboost import dask as dxgb

        from ._dask_ml import _as_dask_array

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
        model = dask_cls(**estimator.get_params())
        with ctx.client.as_current():
            model.fit(X, y, **fit_params)
        # A plain model: same booster, same parameters, picklable, no cluster needed.
        raw = model.get_booster().save_raw(raw_format="ubj")
        plain = type(estimator)(**estimator.get_params())
        plain.load_model(bytearray(raw))
        return plain
