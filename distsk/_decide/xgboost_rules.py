"""What the xgboost engines can train, decided without starting xgboost: the pure rules
the planner reads (``distsk/_engines/xgboost.py`` and ``xgboost_extmem.py`` run them).

An xgboost model is recognised by its module, without importing xgboost. External-memory
training refuses what it cannot do; the reason is data (:class:`Refusal`), so the
planner names it in a prediction and the engine raises the same sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import NoFaithfulTranslationError

__all__ = [
    "Refusal", "is_xgboost_model", "external_memory_refusal", "check_external_memory_params",
    "external_memory_unsupported", "require_external_memory", "external_memory_reason",
    "EXTERNAL_MEMORY_FIT_PARAMS",
]

#: Fit parameters external-memory training has a meaning for; anything else is refused.
EXTERNAL_MEMORY_FIT_PARAMS = ("sample_weight", "verbose")


def is_xgboost_model(estimator) -> bool:
    return type(estimator).__module__.split(".")[0] == "xgboost"


@dataclass(frozen=True)
class Refusal:
    """Why external-memory training cannot train ``estimator`` as it is set."""

    estimator: str  # its class name
    param: str
    value: object
    why: str
    fix: str

    @property
    def setting(self) -> str:
        """``"XGBClassifier(tree_method='approx')"``"""
        return f"{self.estimator}({self.param}={self.value!r})"

    def error(self) -> NoFaithfulTranslationError:
        return NoFaithfulTranslationError(
            f"{self.setting} cannot train through xgboost's external memory on the workers "
            f"({self.why}); distsk does not fit a different model. Options: {self.fix}, "
            "gather the data (raise max_gather_bytes), use backend='xgboost' (xgboost.dask, "
            "when the workers can hold the data), or fit on a subsample."
        )


def external_memory_refusal(estimator, numeric: bool = False) -> Refusal | None:
    """The first setting of ``estimator`` external-memory training cannot honour, or None.

    ``numeric``: the data hold no categorical column (a dask array), so
    ``enable_categorical`` changes nothing (xgboost >= 3.1 sets it by default).
    """
    name = type(estimator).__name__
    params = estimator.get_params()

    def refuse(param, why, fix):
        return Refusal(name, param, params.get(param), why, fix)

    if params.get("tree_method") not in (None, "hist"):
        return refuse("tree_method", "external memory builds histograms only",
                      "tree_method='hist' or None")
    if params.get("booster") not in (None, "gbtree", "dart"):
        return refuse("booster", "external memory trains trees only", "booster='gbtree'")
    if params.get("device") not in (None, "cpu"):
        return refuse("device", "this engine trains on the workers' CPUs", "device='cpu'")
    for param in ("objective", "eval_metric"):
        value = params.get(param)
        values = value if isinstance(value, list | tuple) else [value]
        if any(callable(v) for v in values):
            return refuse(param, "a Python function cannot run inside the collective "
                          "training here", "a built-in name")
    for param in ("callbacks", "early_stopping_rounds", "feature_weights"):
        if params.get(param) is not None:
            return refuse(param, "it needs evaluation sets or per-feature data this engine "
                          "does not pass", f"{param}=None")
    if params.get("enable_categorical") and not numeric:
        return refuse("enable_categorical", "categories would have to be encoded alike in "
                      "every block", "enable_categorical=False with encoded columns")
    return None


def check_external_memory_params(estimator, fit_params=(), numeric=False) -> None:
    """Raise ``NoFaithfulTranslationError`` for what external-memory training cannot do.

    Pure and cheap: called at plan time, before any cluster work, and by the engine
    for what only the data tell (categorical columns) and the fit parameters.
    """
    refusal = external_memory_refusal(estimator, numeric=numeric)
    if refusal is not None:
        raise refusal.error()
    unknown = sorted(set(fit_params) - set(EXTERNAL_MEMORY_FIT_PARAMS))
    if unknown:
        raise NoFaithfulTranslationError(
            f"fit parameters {unknown} are not passed to {type(estimator).__name__}'s "
            f"external-memory training (it takes {list(EXTERNAL_MEMORY_FIT_PARAMS)}); "
            "gather the data (raise max_gather_bytes) or use backend='xgboost' to use them."
        )


def external_memory_unsupported() -> str | None:
    """Why the installed xgboost cannot train from external memory, or None.

    ``distsk[xgboost]`` requires xgboost >= 3.0 (``ExtMemQuantileDMatrix``), but pip keeps
    an older xgboost that was installed before distsk without the extra. (Imports xgboost:
    asked only of an xgboost model, so xgboost is there.)"""
    try:
        import xgboost
    except ImportError:
        return "xgboost is not installed"
    if not hasattr(xgboost, "ExtMemQuantileDMatrix"):
        return f"xgboost {xgboost.__version__} is installed (no ExtMemQuantileDMatrix)"
    return None


def require_external_memory() -> None:
    missing = external_memory_unsupported()
    if missing:
        raise ImportError(f"the xgboost-external-memory engine needs xgboost >= 3.0, which "
                          f"distsk[xgboost] requires, but {missing}. Upgrade it: "
                          "pip install -U 'distsk[xgboost]'.")


def external_memory_reason(estimator, inp, comp, forced) -> str | None:
    """The planner's rule for a forced backend (pure): why an xgboost model on dask data
    too large to gather trains through external memory, or None when xgboost.dask takes it.

    External memory only when requested (``forced="xgboost-external-memory"``); what it
    cannot train is refused here (``NoFaithfulTranslationError``), at plan time. With
    ``backend="auto"`` the planner chooses by the cost model instead (the faster
    predicted of the engines whose predicted peak fits a worker's memory).
    """
    if forced != "xgboost-external-memory":
        return None
    require_external_memory()
    # Categorical columns are checked at fit, where a dask DataFrame's dtypes are known.
    check_external_memory_params(estimator, numeric=True)
    return ("trained through xgboost's external memory on the workers, as requested "
            f"({comp.describe()})")
