"""Larger-than-memory engine: dask-ml equivalents, or partial_fit block by block.

dask-ml is imported only when this engine runs. Parameters are translated only where the
translation is faithful; anything else raises ``NoFaithfulTranslationError`` naming it.
``estimator_`` is always the user's own sklearn class carrying the fitted attributes, so
it predicts on numpy with no cluster and no dask-ml.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.base import clone

from .._cluster.data import compute_all
from .._decide.dask_ml_rules import (
    GLMS,
    check_translation,
    choose_solver,
    lr_penalty,
    sklearn_class,
)
from ..exceptions import NoFaithfulTranslationError
from .base import ExecutionContext, Executor

__all__ = ["DaskMLExecutor", "require_dask_ml", "persisted", "quiet_dask_ml"]


def require_dask_ml():
    try:
        import dask_ml  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "This fit needs dask-ml (larger-than-memory dask data). Install it with "
            '`pip install dask-ml` (the distsk[dask-ml] extra: `pip install ".[dask-ml]"` '
            "in the distsk checkout)."
        ) from exc


# dask-glm standardises X by default, which moves the L2 penalty onto standardised
# coefficients: a different model from sklearn's. Solve on the raw features.
_RAW = {"normalize": False}


def _l2(fit_intercept):
    """sklearn's L2 penalty: dask-glm's "l2" also penalises the intercept (the last
    coefficient when fit_intercept), a different model whenever the features are not
    centred; sklearn leaves the intercept free."""
    if not fit_intercept:
        return "l2"
    from dask_glm.regularizers import L2

    class _L2FreeIntercept(L2):
        def f(self, beta):
            return (beta[:-1] ** 2).sum() / 2

        def gradient(self, beta):
            grad = np.array(beta, dtype=float, copy=True)
            grad[-1] = 0.0
            return grad

        def hessian(self, beta):
            return np.diag(np.r_[np.ones(len(beta) - 1), 0.0])

        def proximal_operator(self, beta, t):  # admm, proximal_grad: intercept not shrunk
            out = np.array(beta, dtype=float, copy=True) / (1 + t)
            out[-1] = beta[-1]
            return out

    return _L2FreeIntercept()


def _lr(p, shape):
    C = np.inf if lr_penalty(p) is None else p["C"]  # penalty=None ignores C, as sklearn
    return "dask_ml.linear_model", "LogisticRegression", dict(
        C=C, fit_intercept=p["fit_intercept"], max_iter=p["max_iter"], tol=p["tol"],
        solver="lbfgs", penalty=_l2(p["fit_intercept"]), solver_kwargs=_RAW,
    )


def _linreg(p, shape):
    # C=inf: no penalty, as sklearn's LinearRegression.
    return "dask_ml.linear_model", "LinearRegression", dict(
        C=np.inf, fit_intercept=p["fit_intercept"], solver="lbfgs", penalty="l2",
        max_iter=500, tol=1e-8, solver_kwargs=_RAW,
    )


def _poisson(p, shape):
    # sklearn minimises mean deviance/2 + alpha/2 |w|^2; dask-glm sums the loss, so its
    # penalty weight 1/C is n_samples * alpha.
    alpha = p["alpha"]
    C = np.inf if alpha == 0 else 1.0 / (shape[0] * alpha)
    return "dask_ml.linear_model", "PoissonRegression", dict(
        C=C, fit_intercept=p["fit_intercept"], max_iter=p["max_iter"], tol=p["tol"],
        solver="lbfgs", penalty=_l2(p["fit_intercept"]), solver_kwargs=_RAW,
    )


def _newton_terms(Xb, yb, w, b, family):
    """One row block's share of the summed loss, its gradient and Hessian at (w, b),
    packed in one vector (the intercept b last); Xb is never copied. An overshooting
    step overflows exp to inf: expected, ``_newton`` then halves the step."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _newton_block(Xb, yb, w, b, family)


def _newton_block(Xb, yb, w, b, family):
    eta = Xb @ w + b
    if family == "logistic":
        mu = np.exp(-np.logaddexp(0.0, -eta))  # expit, without overflow
        loss = np.sum(np.logaddexp(0.0, eta) - yb * eta)
        d = mu * (1.0 - mu)
    else:  # poisson, log link
        mu = np.exp(eta)
        loss = np.sum(mu - yb * eta)
        d = mu
    r = mu - yb
    p = Xb.shape[1]
    H = np.empty((p + 1, p + 1))
    H[:p, :p] = Xb.T @ (Xb * d[:, None])
    H[:p, p] = H[p, :p] = Xb.T @ d
    H[p, p] = d.sum()
    return np.concatenate([[loss], Xb.T @ r, [r.sum()], H.ravel()])


def _summed(parts):
    """Sum delayed vectors as a tree (8 at a time), so no worker holds them all."""
    import dask

    while len(parts) > 1:
        parts = [dask.delayed(sum)(parts[i:i + 8]) for i in range(0, len(parts), 8)]
    return parts[0]


def _newton(X, y, *, family, lam, fit_intercept, max_iter, tol):
    """Newton's method on dask arrays for the summed loss + lam/2 |w|^2, intercept free.

    dask-glm's ``newton`` takes no penalty and takes full steps; this one adds the L2
    penalty (the intercept unpenalised, as sklearn), halves the step when the objective
    rises (plain Newton can overshoot from zero), and computes the loss, gradient and
    Hessian of a row block in one task (``_newton_terms``: one read of each block per
    iteration, no intercept column appended). Stops when no coefficient moves by more
    than ``tol`` (dask-glm's rule). Returns ``(coef, intercept, n_iter, converged)``.
    """
    import dask

    p = X.shape[1]
    blocks = list(zip(X.to_delayed().ravel(), y.to_delayed().ravel()))
    penalised = np.r_[np.ones(p), 0.0 if fit_intercept else 1.0]
    beta = np.zeros(p + 1)  # the intercept last, held at 0 without fit_intercept
    free = slice(None) if fit_intercept else slice(0, p)
    step = None
    best = np.inf
    for n_iter in range(1, max_iter + 1):
        total = _summed([dask.delayed(_newton_terms)(xb, yb, beta[:p], beta[p], family)
                         for xb, yb in blocks])
        (total,) = dask.compute(total)
        loss = total[0] + lam / 2 * float(np.sum(penalised * beta ** 2))
        if step is not None and not loss <= best:  # rose (or NaN): go half as far
            step = step / 2
            beta[free] += step
            if np.max(np.abs(step)) <= tol:
                return beta[:p], beta[p], n_iter, True
            continue
        best = loss
        grad = (total[1:p + 2] + lam * penalised * beta)[free]
        hess = (total[p + 2:].reshape(p + 1, p + 1) + np.diag(lam * penalised))[free, free]
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        beta[free] -= step
        if np.max(np.abs(step)) <= tol:
            return beta[:p], beta[p], n_iter, True
    return beta[:p], beta[p], max_iter, False


def _fit_newton(name, kwargs, X, y):
    """The translated GLM (``kwargs``: its dask-ml arguments) fit by ``_newton``; returns
    an object with dask-ml's fitted attributes for ``_transplant``."""
    from types import SimpleNamespace

    from sklearn.exceptions import ConvergenceWarning

    fit_intercept = kwargs["fit_intercept"]
    if X.chunks[1] != (X.shape[1],):
        X = X.rechunk({1: -1})
    y = y.rechunk((X.chunks[0],))
    coef, intercept, n_iter, converged = _newton(
        X, y, family="logistic" if name == "LogisticRegression" else "poisson",
        lam=0.0 if kwargs["C"] == np.inf else 1.0 / kwargs["C"], fit_intercept=fit_intercept,
        max_iter=kwargs["max_iter"], tol=kwargs["tol"])
    if not converged:
        warnings.warn(
            f"Newton's method (distsk's dask-ml engine) did not converge in max_iter="
            f"{kwargs['max_iter']} iterations: no coefficient step <= tol={kwargs['tol']}. "
            "Increase max_iter.", ConvergenceWarning, stacklevel=2)
    return SimpleNamespace(coef_=coef, intercept_=intercept if fit_intercept else 0.0,
                           n_iter_=n_iter)


def _kmeans(p, shape):
    init = "k-means||" if isinstance(p["init"], str) else p["init"]  # k-means++, scalable
    return "dask_ml.cluster", "KMeans", dict(
        n_clusters=p["n_clusters"], init=init, max_iter=p["max_iter"], tol=p["tol"],
        random_state=p["random_state"],
    )


def _pca(p, shape):
    n_components = min(shape) if p["n_components"] is None else p["n_components"]
    solver = p["svd_solver"]
    if solver == "auto":  # sklearn's own rule (PCA._fit), not dask-ml's different one
        if shape[1] <= 1_000 and shape[0] >= 10 * shape[1]:
            solver = "covariance_eigh"
        elif max(shape) <= 500 or not 1 <= n_components < 0.8 * min(shape):
            solver = "full"
        else:
            solver = "randomized"
    # Both exact sklearn solvers are dask's exact (tsqr) SVD.
    solver = "full" if solver == "covariance_eigh" else solver
    iterated_power = p["iterated_power"]
    if iterated_power == "auto":  # sklearn's randomized_svd rule
        iterated_power = 7 if n_components < 0.1 * min(shape) else 4
    return "dask_ml.decomposition", "PCA", dict(
        n_components=n_components, whiten=p["whiten"], svd_solver=solver,
        random_state=p["random_state"], iterated_power=iterated_power,
    )


def _tsvd(p, shape):
    algorithm = {"randomized": "randomized", "arpack": "tsqr"}[p["algorithm"]]
    return "dask_ml.decomposition", "TruncatedSVD", dict(
        n_components=p["n_components"], algorithm=algorithm, n_iter=p["n_iter"],
        random_state=p["random_state"],
    )


def _standard(p, shape):
    # sklearn keeps mean_ whenever with_std (the variance needs it), even if with_mean=False;
    # dask-ml computes it only if asked. estimator_ keeps the user's with_mean for transform.
    return "dask_ml.preprocessing", "StandardScaler", dict(
        with_mean=p["with_mean"] or p["with_std"], with_std=p["with_std"],
    )


def _minmax(p, shape):
    return "dask_ml.preprocessing", "MinMaxScaler", dict(
        feature_range=p["feature_range"], clip=p["clip"],
    )


# The dask-ml arguments of each translatable class (which parameters are translated, and
# which values refused, is decided at plan time: ``distsk/_decide/dask_ml_rules.py``).
_BUILD: dict[str, Callable[[dict, tuple], tuple[str, str, dict]]] = {
    "LogisticRegression": _lr, "LinearRegression": _linreg, "PoissonRegressor": _poisson,
    "KMeans": _kmeans, "PCA": _pca, "TruncatedSVD": _tsvd, "StandardScaler": _standard,
    "MinMaxScaler": _minmax,
}

_FITTED = (
    "coef_", "intercept_", "classes_", "n_iter_", "cluster_centers_", "inertia_", "labels_",
    "components_", "explained_variance_", "explained_variance_ratio_", "singular_values_",
    "mean_", "n_components_", "noise_variance_", "n_samples_", "var_", "scale_",
    "n_samples_seen_", "min_", "data_min_", "data_max_", "data_range_",
)


def _as_dask_array(X):
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, (dd.DataFrame, dd.Series)):
        return X.to_dask_array(lengths=True)
    if isinstance(X, da.Array):
        return X
    return da.from_array(np.asarray(X), chunks=(max(1, len(X) // 4), -1) if np.ndim(X) == 2
                         else max(1, len(X) // 4))


class DaskMLExecutor(Executor):
    """Fit dask collections that exceed the gather limit, blockwise on the cluster."""

    name = "dask-ml"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        if ctx.plan.strategy == "translated":
            check_translation(estimator)  # before any cluster work, as planning does
            if fit_params:
                raise NoFaithfulTranslationError(
                    f"fit parameters {sorted(fit_params)} are not passed to dask-ml's "
                    f"{type(estimator).__name__}; gather the data (raise max_gather_bytes, "
                    "or backend='loky') to use them, or fit on a subsample."
                )
        require_dask_ml()
        X = _as_dask_array(X)
        y = None if y is None else _as_dask_array(y)
        X, y = persisted(ctx.client, X, y)
        with quiet_dask_ml():
            return self._fit(estimator, X, y, fit_params, ctx)

    def _fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        import importlib

        X, y = _check_input(estimator, X, y)
        if ctx.plan.strategy == "incremental":
            from dask_ml.wrappers import Incremental

            kwargs = dict(fit_params)
            if hasattr(estimator, "classes_") is False and "classes" not in kwargs and y is not None:
                from sklearn.base import is_classifier

                if is_classifier(estimator):
                    kwargs["classes"] = np.unique(y.compute())
            inc = Incremental(estimator, scoring=None, shuffle_blocks=False)
            inc.fit(X, y, **kwargs)
            return inc.estimator_
        name = sklearn_class(estimator)
        module, cls, kwargs = _BUILD[name](
            estimator.get_params(deep=False), tuple(int(n) for n in X.shape))
        if name == "LogisticRegression":
            classes = np.unique(y.compute())
            if len(classes) < 2:
                # sklearn's own refusal, raised by sklearn on one row per class.
                clone(estimator).fit(np.zeros((len(classes), X.shape[1])), classes)
            if len(classes) != 2:
                raise NoFaithfulTranslationError(
                    f"LogisticRegression on {len(classes)} classes has no faithful dask-ml "
                    "translation (dask-ml fits binary problems only). Gather the data (raise "
                    "max_gather_bytes) or use SGDClassifier, which trains block by block."
                )
            # dask-glm's logistic loss takes y in {0, 1}; sklearn's positive class is
            # classes_[1], whatever the labels are (other labels fit a different model).
            y = (y == classes[1]).astype(np.float64)
        solver = ctx.plan.solver  # chosen by the planner, named in plan_.reason
        if solver is None and name in GLMS:  # a plan made without one (by hand)
            comp = ctx.plan.compute
            choice = choose_solver(name, int(X.shape[1]), int(X.nbytes),
                                   getattr(comp, "worker_memory_bytes", 0),
                                   getattr(comp, "n_workers", 1))
            solver = None if choice is None else choice.solver
        # _newton_terms is written for numpy blocks; sparse blocks keep dask-glm's L-BFGS.
        if solver == "newton" and type(X._meta) is np.ndarray:
            model = _fit_newton(name, kwargs, X, y)
        else:
            model = getattr(importlib.import_module(module), cls)(**kwargs)
            model.fit(X) if y is None else model.fit(X, y)
        estimator = _transplant(model, estimator, X)
        if name == "LogisticRegression":
            estimator.classes_ = classes
        return estimator


def persisted(client, X, y):
    """``X`` and ``y`` computed once into the cluster's memory (None stays None).

    Iterative solvers (L-BFGS, k-means||, boosting rounds) build a graph per iteration;
    on persisted input each graph names the blocks where they live, instead of carrying
    (or recomputing) the data every time. Workers spill to disk what does not fit.
    """
    if client is None:
        return X, y
    from .._cluster.data import sending_input

    # One collection per call: persisting arrays and dataframes together can hand one
    # collection another's blocks (tests/test_contracts.py); y made from X's source is
    # then read twice, once per call.
    with sending_input():
        return client.persist(X), (None if y is None else client.persist(y))


@contextlib.contextmanager
def quiet_dask_ml():
    """Silence warnings dask-ml and dask-glm cause by their own use of dask and scipy.

    dask-glm sets the deprecated dask option ``fuse_ave_width`` (a FutureWarning) and
    calls scipy's L-BFGS with its deprecated ``iprint`` (a DeprecationWarning): nothing
    the user wrote or can change. Warnings about the user's model and data pass.
    """
    from .._compat import dask_glm_lbfgs_without_iprint

    dask_glm_lbfgs_without_iprint()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*'fuse_ave_width'", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"scipy\.optimize: The `disp` and `iprint`",
                                category=DeprecationWarning)
        yield


def _stand_in(value, shape, dtype):
    """A read-only array of ``shape`` holding only ``value``, in no memory (zero strides)."""
    return np.broadcast_to(np.asarray(value, dtype=dtype), shape)


def _check_input(estimator, X, y):
    """Raise what sklearn's fit would raise for ``X``, ``y``, before dask-ml sees them.

    sklearn validates in fit; dask-ml does not, and bad input then fails deep in a dask
    graph or fits something else (NaN makes dask-glm's L-BFGS lose its scattered
    coefficients: a raw FutureCancelledError). The checks follow sklearn's order (X;
    y's shape, type and values; lengths) and cost one pass over the data; sklearn's own
    validation raises on stand-ins with the same defect, so exceptions and warnings are
    sklearn's, word for word. Returns ``X, y`` with known chunk sizes, a column-vector
    ``y`` raveled and a regressor's object ``y`` as float64, as sklearn takes them.
    """
    import dask
    from sklearn.base import is_regressor
    from sklearn.utils import check_array, check_consistent_length, get_tags
    from sklearn.utils.validation import column_or_1d

    if any(np.isnan(n) for n in X.shape):  # boolean-masked: sizes known only once computed
        X = X.compute_chunk_sizes()
    if y is not None and any(np.isnan(n) for n in y.shape):
        y = y.compute_chunk_sizes()
    tags = get_tags(estimator)
    supervised = y is not None and tags.target_tags.required
    _check_finite(estimator, "X", X, tags.input_tags.allow_nan, check_array)
    if not supervised:
        return X, y
    if y.ndim != 1:
        if tags.target_tags.multi_output:
            if y.ndim > 2:  # sklearn's error for it
                check_array(_stand_in(0, y.shape, y.dtype), ensure_2d=False,
                            estimator=estimator, input_name="y")
            raise NoFaithfulTranslationError(
                f"y of shape {y.shape} has more than one target; the dask-ml equivalent of "
                f"{type(estimator).__name__} fits one. Gather the data (raise "
                "max_gather_bytes) or fit one target at a time."
            )
        column_or_1d(_stand_in(0, y.shape, y.dtype), warn=True)  # sklearn's error or warning
        y = y.reshape(-1)
    if is_regressor(estimator) and y.dtype.kind == "O":
        # sklearn's regressors take y as float64 and name the first value that is not a
        # number: blocks are converted in order and the first failure is raised here.
        failures = compute_all(*[dask.delayed(_as_float_failure)(b) for b in y.to_delayed()])
        failure = next((f for f in failures if f is not None), None)
        if failure is not None:
            raise failure[0](failure[1])
        y = y.astype(np.float64)
    _check_finite(estimator, "y", y, False, check_array)
    check_consistent_length(X, y)
    return X, y


def _check_finite(estimator, name, array, allow_nan, check_array):
    """sklearn's NaN / infinity error for ``array`` (one pass), raised on a stand-in."""
    import dask.array as da

    if array.dtype.kind != "f":
        return
    has_nan, has_inf = compute_all(da.isnan(array).any(), da.isinf(array).any())
    bad = np.nan if has_nan and not allow_nan else (np.inf if has_inf else None)
    if bad is not None:
        check_array(_stand_in(bad, (1, 1) if name == "X" else (1,), array.dtype),
                    ensure_2d=name == "X", estimator=estimator, input_name=name,
                    ensure_all_finite="allow-nan" if allow_nan else True)


def _as_float_failure(block):
    try:
        block.astype(np.float64)
    except (ValueError, TypeError) as exc:
        return type(exc), str(exc)
    return None


def _transplant(model, estimator, X):
    """Copy dask-ml's fitted attributes onto the user's own (unfitted) estimator."""
    import dask

    for attr in _FITTED:
        if attr == "labels_":
            continue  # a full-length lazy array; KMeans.predict gives labels on demand
        if hasattr(model, attr):
            value = getattr(model, attr)
            if hasattr(value, "compute"):
                value = value.compute()
            setattr(estimator, attr, value)
    if type(estimator).__name__ in ("LogisticRegression",):
        estimator.coef_ = np.atleast_2d(estimator.coef_)
        estimator.intercept_ = np.atleast_1d(np.asarray(estimator.intercept_, dtype=float))
        estimator.n_iter_ = np.atleast_1d(getattr(model, "n_iter_", 0))
    elif type(estimator).__name__ in ("LinearRegression", "PoissonRegressor"):
        estimator.intercept_ = float(np.asarray(estimator.intercept_)) if estimator.fit_intercept else 0.0
        if type(estimator).__name__ == "PoissonRegressor":
            estimator.n_iter_ = int(np.max(getattr(model, "n_iter_", 0) or 0))
            estimator._base_loss = estimator._get_loss()  # read by predict (a contract test)
    elif type(estimator).__name__ == "KMeans":
        estimator._n_threads = 1
        estimator.n_iter_ = int(getattr(model, "n_iter_", 0) or 0)
    elif type(estimator).__name__ in ("PCA", "TruncatedSVD"):
        if type(estimator).__name__ == "PCA":
            estimator.n_samples_ = int(X.shape[0])
            estimator.n_components_ = estimator.components_.shape[0]
    elif type(estimator).__name__ == "StandardScaler":
        estimator.n_samples_seen_ = int(X.shape[0])
        if estimator.with_std and getattr(estimator, "scale_", None) is None:
            estimator.scale_ = np.sqrt(estimator.var_)
        if not estimator.with_std:  # what sklearn's fit leaves
            estimator.var_ = estimator.scale_ = None
            if not estimator.with_mean:
                estimator.mean_ = None
    estimator.n_features_in_ = int(X.shape[1])
    del dask
    return estimator
