"""What the dask-ml engine can fit, decided without dask-ml: the pure rules the planner reads.

Which sklearn classes have a faithful dask-ml translation and which parameter values
each accepts (refused with ``NoFaithfulTranslationError`` naming the parameter), and the
solver rule for its generalised linear models. The engine (``distsk/_engines/dask_ml.py``)
imports these rules and adds what needs dask-ml: the dask-ml arguments each class maps
to, distsk's Newton solver, the fit itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..exceptions import NoFaithfulTranslationError

__all__ = [
    "TRANSLATABLE", "Translatable", "SolverChoice", "GLMS", "NEWTON_MAX_FEATURES",
    "NEWTON_HESSIAN_MEMORY_FRACTION", "check_translation", "choose_solver", "dask_ml_support",
    "lr_penalty", "plan_solver", "sklearn_class", "untranslatable",
]


# For each supported sklearn class, every parameter is in exactly one of three places
# (``Translatable``): ``translated`` -- the engine's builder maps its value to a dask-ml
# argument of the same meaning, or ``check`` refuses the value; ``no_effect`` -- it does not
# change the fitted model on this path (any value); anywhere else -- accepted at sklearn's
# default only. tests/test_translations.py walks every parameter at a non-default value.
@dataclass(frozen=True)
class Translatable:
    translated: tuple[str, ...]
    no_effect: tuple[str, ...] = ()
    #: (params) -> None; refuses values with no exact meaning, needs no data (plan time).
    check: Callable[[dict], None] = lambda p: None


def untranslatable(cls, param, value, why, default):
    return NoFaithfulTranslationError(
        f"{cls}({param}={value!r}) has no faithful dask-ml translation ({why}); distsk "
        f"does not fit a different model. Options: {param}={default!r} (its default), "
        "gather the data (raise max_gather_bytes, or backend='loky'), or fit on a "
        "subsample that fits in memory."
    )


def lr_penalty(p):
    """The penalty sklearn fits (LogisticRegression.fit's own resolution): before 1.8
    ``penalty`` alone (``l1_ratio`` is read for elasticnet only), from 1.8 ``l1_ratio``
    unless ``penalty`` is given in its deprecated explicit form."""
    if p["penalty"] != "deprecated":
        return p["penalty"]  # the deprecated explicit form wins over l1_ratio
    if p["C"] == np.inf:
        return None
    if p["l1_ratio"] in (0, None):  # 0.0 is the default
        return "l2"
    return "l1" if p["l1_ratio"] == 1 else "elasticnet"


def _lr_check(p):
    # dask-glm's L1 / elastic net use proximal solvers with their own scaling: refused.
    if lr_penalty(p) not in ("l2", None):
        param = "l1_ratio" if p["penalty"] == "deprecated" else "penalty"
        from sklearn.linear_model import LogisticRegression

        raise untranslatable("LogisticRegression", param, p[param],
                             "the dask-ml engine fits the L2 penalty or none",
                             LogisticRegression().get_params()[param])  # the installed one
    _lbfgs_only("LogisticRegression", p)


def _lbfgs_only(cls, p):
    # dask-glm's L-BFGS is sklearn's solver on the same objective; its newton and
    # gradient_descent take no penalty, and sklearn's other solvers have no dask-ml twin.
    if p["solver"] != "lbfgs":
        raise untranslatable(cls, "solver", p["solver"],
                             "dask-ml's solver for this penalty is L-BFGS only", "lbfgs")


def _kmeans_check(p):
    init = p["init"]
    if isinstance(init, str) and init != "k-means++":
        raise untranslatable("KMeans", "init", init,
                             "dask-ml seeds with k-means|| or a given array", "k-means++")
    if callable(init):
        raise untranslatable("KMeans", "init", init,
                             "dask-ml takes an array or 'k-means||'", "k-means++")
    # sklearn's n_init is the number of complete runs kept by inertia ('auto' is one run
    # for k-means++ or an array); dask-ml's n_init only re-clusters k-means||'s candidates.
    if p["n_init"] not in ("auto", 1):
        raise untranslatable("KMeans", "n_init", p["n_init"],
                             "dask-ml runs k-means once; sklearn keeps the best of n_init runs",
                             "auto")


def _pca_check(p):
    if p["svd_solver"] not in ("auto", "full", "covariance_eigh", "randomized"):
        raise untranslatable("PCA", "svd_solver", p["svd_solver"],
                             "dask-ml offers exact and randomized SVD", "auto")
    n_components = p["n_components"]
    if isinstance(n_components, float) or n_components == "mle":
        raise untranslatable("PCA", "n_components", n_components,
                             "dask-ml needs an integer number of components", None)


def _tsvd_check(p):
    if p["algorithm"] == "arpack" and p["tol"] != 0.0:
        raise untranslatable("TruncatedSVD", "tol", p["tol"],
                             "dask-ml's exact SVD has no tolerance", 0.0)


# no_effect, why: n_jobs, verbose, copy* change neither the objective nor the result;
# transform-time options (copy, clip) are kept by estimator_, the user's own class;
# warm_start has nothing to start from (every fit is on a clone, as on every engine);
# LogisticRegression's intercept_scaling and random_state are read by solvers other than
# lbfgs only, PCA's tol by 'arpack' only (both refused); LinearRegression's tol by sparse
# input only; KMeans' 'elkan' computes Lloyd's iterations exactly.
# Defaults only (not listed): class_weight, dual, positive, n_oversamples,
# power_iteration_normalizer -- dask-ml has no such parameter.
TRANSLATABLE = {
    "LogisticRegression": Translatable(
        ("C", "l1_ratio", "penalty", "fit_intercept", "max_iter", "tol", "solver"),
        ("n_jobs", "verbose", "random_state", "intercept_scaling", "warm_start"), _lr_check),
    "LinearRegression": Translatable(("fit_intercept",), ("n_jobs", "copy_X", "tol")),
    "PoissonRegressor": Translatable(
        ("alpha", "fit_intercept", "max_iter", "tol", "solver"),
        ("verbose", "warm_start"), lambda p: _lbfgs_only("PoissonRegressor", p)),
    "KMeans": Translatable(
        ("n_clusters", "init", "max_iter", "tol", "random_state", "n_init"),
        ("verbose", "copy_x", "algorithm"), _kmeans_check),
    "PCA": Translatable(
        ("n_components", "whiten", "svd_solver", "random_state", "iterated_power"),
        ("copy", "tol"), _pca_check),
    "TruncatedSVD": Translatable(
        ("n_components", "algorithm", "n_iter", "random_state", "tol"), (), _tsvd_check),
    "StandardScaler": Translatable(("with_mean", "with_std"), ("copy",)),
    "MinMaxScaler": Translatable(("feature_range", "clip"), ("copy",)),
}


def sklearn_class(estimator) -> str | None:
    """The name of ``estimator``'s class when it is a translatable sklearn class."""
    module = type(estimator).__module__
    name = type(estimator).__name__
    return name if module.startswith("sklearn.") and name in TRANSLATABLE else None


def dask_ml_support(estimator) -> str | None:
    """"translated", "incremental" or None: can the dask-ml engine fit ``estimator``?

    Raises ``NoFaithfulTranslationError`` for a translated class with a parameter
    that has no exact dask-ml meaning: planning refuses it rather than fit another model.
    """
    if sklearn_class(estimator):
        check_translation(estimator)
        return "translated"
    if hasattr(estimator, "partial_fit"):
        return "incremental"
    return None


def check_translation(estimator) -> None:
    """Raise ``NoFaithfulTranslationError`` naming the first parameter with no exact
    dask-ml meaning. Needs no data and no cluster (plan time)."""
    name = sklearn_class(estimator)
    translation = TRANSLATABLE[name]
    defaults = type(estimator)().get_params(deep=False)
    params = estimator.get_params(deep=False)
    for key, value in params.items():
        if key in translation.translated or key in translation.no_effect:
            continue
        if not _same(value, defaults.get(key)):
            raise untranslatable(name, key, value, "dask-ml has no such parameter",
                                 defaults.get(key))
    translation.check(params)


def _same(a, b):
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except Exception:
        return a is b


# ------------------------------------------------------------------- the solver rule
# Every solver below minimises sklearn's objective (the summed loss plus 1/(2C) |w|^2,
# the intercept free); they differ in passes over the data and work per pass. dask-glm's
# newton and gradient_descent take no penalty; its admm and proximal_grad take one (with
# the engine's _L2FreeIntercept proximal operator) but were measured 3-20x slower than
# L-BFGS and stop far from the optimum at sklearn's tol. So the choice is between
# dask-glm's L-BFGS (one pass per function evaluation, O(n p) work, 20-100 passes) and
# distsk's Newton (one pass per iteration, O(n p^2) work and a (p+1)^2 Hessian per block,
# 5-15 passes). Measurements: benchmarks/lr_solvers.py, docs/larger_than_memory.rst.

#: Newton was faster than L-BFGS at every shape measured, up to this many features,
#: with the data spilled to disk or held in memory; beyond it L-BFGS is kept (unmeasured).
NEWTON_MAX_FEATURES = 1_000
#: Newton's partial Hessians in flight on a worker (a block's own and up to 8 being
#: summed) may take this share of one worker's memory limit; more goes to L-BFGS.
NEWTON_HESSIAN_MEMORY_FRACTION = 0.25

#: The translated classes with a solver to choose.
GLMS = ("LogisticRegression", "PoissonRegressor")


@dataclass(frozen=True)
class SolverChoice:
    """The solver the dask-ml engine runs for a GLM, and why (goes into ``plan_.reason``)."""

    solver: str  # "newton" (distsk's) or "lbfgs" (dask-glm's)
    reason: str


def choose_solver(name: str | None, n_features, data_bytes=None, cluster_memory_bytes=0,
                  n_workers: int = 1) -> SolverChoice | None:
    """Pure: the solver for ``name`` (a translated class) on data of ``n_features``
    columns and ``data_bytes`` bytes, on ``n_workers`` workers whose memory limits add up
    to ``cluster_memory_bytes`` (0: unknown). None for classes without a choice."""
    if name not in GLMS:
        return None
    if n_features is None or (isinstance(n_features, float) and np.isnan(n_features)):
        return SolverChoice("lbfgs", "solver L-BFGS (dask-glm): number of features unknown")
    spills = bool(cluster_memory_bytes) and data_bytes is not None and (
        data_bytes > cluster_memory_bytes)
    where = ("the data exceed the cluster's memory (each pass reads spilled blocks)"
             if spills else "the cluster's memory unknown" if not cluster_memory_bytes
             else "the data's size unknown" if data_bytes is None
             else "the data fit in the cluster's memory")
    if n_features > NEWTON_MAX_FEATURES:
        return SolverChoice("lbfgs", (
            f"solver L-BFGS (dask-glm): {n_features} features > {NEWTON_MAX_FEATURES}, "
            f"where Newton's p x p Hessian per pass outweighs its fewer passes; {where}"))
    hessians = 9 * 8 * (n_features + 1) ** 2
    per_worker = cluster_memory_bytes // max(n_workers, 1) if cluster_memory_bytes else 0
    if per_worker and hessians > NEWTON_HESSIAN_MEMORY_FRACTION * per_worker:
        return SolverChoice("lbfgs", (
            f"solver L-BFGS (dask-glm): Newton's partial Hessians ({hessians / 1e6:.0f} MB) "
            f"exceed {NEWTON_HESSIAN_MEMORY_FRACTION:.0%} of a worker's memory "
            f"({per_worker / 1e6:.0f} MB); {where}"))
    return SolverChoice("newton", (
        f"solver Newton (distsk's; fewest passes over the data): {n_features} features <= "
        f"{NEWTON_MAX_FEATURES}; {where}"))


def plan_solver(estimator, inp, comp) -> SolverChoice | None:
    """``choose_solver`` from the plan's input and compute profiles."""
    shape = getattr(inp, "shape", None)
    n_features = shape[1] if shape is not None and len(shape) == 2 else None
    return choose_solver(sklearn_class(estimator), n_features, getattr(inp, "nbytes", None),
                         getattr(comp, "worker_memory_bytes", 0), getattr(comp, "n_workers", 1))
