"""Planning for dask input over the gather limit: an engine that fits it where it lives.

Part of ``planning`` (``plan_fit`` calls :func:`plan_large`): which larger-than-memory
engine can take the estimator (their specs and rules), each one's prediction
(``EngineSpec.predict_large``), and the plan with its reason. Pure, like all planning.
"""

from __future__ import annotations

from dataclasses import replace

from ..exceptions import ClusterUnavailableError, DataTooLargeError
from .cost_large import LargeCase, LargeWork, predict_large
from .cost_model import Costs, Prediction, _secs
from .dask_ml_rules import dask_ml_support, plan_solver, sklearn_class
from .plan import Plan, compared, n_jobs_of, parallel_kind
from .profile import format_bytes
from .specs import SPECS, spec
from .xgboost_rules import (
    check_external_memory_params,
    external_memory_reason,
    external_memory_refusal,
    external_memory_unsupported,
    is_xgboost_model,
    require_external_memory,
)

__all__ = ["plan_large", "large_work"]

_PLAIN_XGBOOST = "estimator_ is the equivalent plain xgboost model."


def plan_large(estimator, inp, comp, limit, forced=None, costs=None) -> Plan:
    """Dask input over the gather limit ``limit``: an engine that fits where the data live.

    With ``backend="auto"`` (``forced`` None) each engine that can take the estimator is
    predicted by its spec's ``predict_large`` (gathering, excluded by the limit; dask-ml;
    xgboost.dask; xgboost's external memory) and the predictions are recorded in
    ``Plan.predictions``; between the xgboost engines the faster that fits in the
    workers' memory is chosen, and none whose predicted peak is over it.
    """
    size = "of unknown size" if inp.nbytes is None else f"of {format_bytes(inp.nbytes)}"
    over = f"{inp.describe()} is over the gather limit of {format_bytes(limit)}" if inp.nbytes else (
        f"{inp.kind} {size}"
    )
    refused = None if forced is None else spec(forced).refuses(estimator)
    if refused is not None:
        raise ValueError(refused)
    preds: tuple[Prediction, ...] = ()
    if forced is None:
        preds = _predicted(estimator, inp, comp, limit, costs or Costs())
    if forced in (None, "xgboost", "xgboost-external-memory") and is_xgboost_model(estimator):
        if not comp.has_cluster:
            raise ClusterUnavailableError(
                f"{over}: xgboost models train on such data with xgboost.dask, which needs a "
                f"Dask cluster, but {comp.describe()}. Create a distributed.Client, pass "
                "client=..., or raise max_gather_bytes to gather the data."
            )
        if forced is not None:
            return _xgboost_forced(estimator, inp, comp, over, forced)
        return _xgboost_choice(estimator, inp, comp, over, preds)
    plan = None if forced not in (None, "dask-ml") else _dask_ml_plan(
        estimator, inp, comp, over, preds)
    if plan is not None:
        return plan
    raise DataTooLargeError(
        f"{over}, and {type(estimator).__name__} has no larger-than-memory engine: "
        "distsk runs LogisticRegression, LinearRegression, PoissonRegressor, KMeans, PCA, "
        "TruncatedSVD, StandardScaler, MinMaxScaler through dask-ml, estimators with "
        "partial_fit block by block, and xgboost models through xgboost.dask. Options: raise "
        "max_gather_bytes (e.g. max_gather_bytes='8GB') to gather the data, use one of those "
        "estimators, or subsample the data."
    )


def large_work(estimator, support, comp) -> LargeWork:
    """What the larger-than-memory engines would run for ``estimator`` (pure), read off
    their rules: dask-ml's ``support``, xgboost's, and why external memory cannot."""
    xgb = is_xgboost_model(estimator)
    external = None
    if xgb:
        external = external_memory_unsupported()
        refusal = None if external else external_memory_refusal(estimator, numeric=True)
        if refusal is not None:
            external = f"{refusal.setting} is not supported there"
    n_jobs = n_jobs_of(estimator)
    return LargeWork(
        name=sklearn_class(estimator) or type(estimator).__name__, dask_ml=support,
        xgboost=xgb, external_memory=external,
        local_engine="loky" if n_jobs not in (None, 1) else "sequential",
    )


def _predicted(estimator, inp, comp, limit, costs) -> tuple[Prediction, ...]:
    """Every engine's prediction, from its spec, for the work it would run (the solver
    the dask-ml engine would run is the one planned)."""
    support = dask_ml_support(estimator)
    work = large_work(estimator, support, comp)
    if support == "translated":
        choice = plan_solver(estimator, inp, comp)
        work = replace(work, solver=None if choice is None else choice.solver)
    case = LargeCase(estimator, parallel_kind(estimator), work, inp, comp, costs,
                     max_gather_bytes=limit)
    return predict_large(case, SPECS)


def _dask_ml_plan(estimator, inp, comp, over, preds) -> Plan | None:
    """The dask-ml engine's plan (None: it cannot fit ``estimator``); the solver chosen
    here, once: the engine runs ``plan.solver``, the solver the reason names."""
    support = dask_ml_support(estimator)
    name = type(estimator).__name__
    chosen = next((p for p in preds if p.engine == "dask-ml"), None)
    predicted = ("" if chosen is None else
                 f" Predicted: {compared(preds, 'dask-ml')}{_gain(preds, chosen)}.")
    if support == "translated":
        choice = plan_solver(estimator, inp, comp)
        note = "" if choice is None else f" {choice.reason[0].upper()}{choice.reason[1:]}."
        return Plan(
            "dask-ml", "translated",
            f"{over}: fit blockwise on the cluster by the dask-ml equivalent of "
            f"{name} ({comp.describe()}); estimator_ is a plain "
            f"{name} carrying the fitted attributes.{note}{predicted}",
            input=inp, compute=comp, predictions=preds,
            solver=None if choice is None else choice.solver,
        )
    if support == "incremental":
        return Plan(
            "dask-ml", "incremental",
            f"{over}: {name} has partial_fit, so it is trained "
            f"block by block (dask-ml Incremental), one pass over the data.{predicted}",
            input=inp, compute=comp, predictions=preds,
        )
    return None


def _xgboost_forced(estimator, inp, comp, over, forced) -> Plan:
    """A forced xgboost engine: external memory only when requested (refused, naming
    the setting, when it cannot train the model)."""
    external = external_memory_reason(estimator, inp, comp, forced)
    if external is not None:
        return Plan("xgboost-external-memory", "external-memory",
                    f"{over}: {external}; {_PLAIN_XGBOOST}", input=inp, compute=comp)
    return Plan("xgboost", "xgboost-dask",
                f"{over}: trained where the data lives with xgboost.dask "
                f"({comp.describe()}); {_PLAIN_XGBOOST}", input=inp, compute=comp)


def _xgboost_choice(estimator, inp, comp, over, preds) -> Plan:
    """``backend="auto"`` for an xgboost model: xgboost.dask or external memory, the faster
    predicted of those that fit in a worker's memory; external memory when xgboost.dask
    does not fit (refused, naming the parameter, when it cannot train the model)."""
    model = _PLAIN_XGBOOST
    by = {p.engine: p for p in preds}
    dask, ext = by["xgboost"], by["xgboost-external-memory"]
    lives = f"trained where the data lives with xgboost.dask ({comp.describe()})"
    reads = (f"trained through xgboost's external memory on the {comp.n_workers} workers "
             f"({comp.describe()}), one task per worker reading its blocks one at a time")
    if dask.fits_memory:
        usable = [p for p in (dask, ext) if p.seconds is not None and p.fits_memory]
        best = min(usable, key=lambda p: p.seconds) if usable else dask
        how = lives if best is dask else reads
        why = (f"predicted fastest: {compared(preds, best.engine)}{_gain(preds, best)}"
               if best.seconds is not None else "the input's size is unknown")
        return Plan(best.engine, "xgboost-dask" if best is dask else "external-memory",
                    f"{over}: {how}; {why}; {model}", input=inp, compute=comp,
                    predictions=preds)
    peak = (f"xgboost.dask needs the data in the workers' memory: its predicted peak "
            f"{format_bytes(dask.peak_bytes)} per worker is over the "
            f"{format_bytes(dask.room_bytes)} there")
    # An xgboost without external memory (ImportError naming the upgrade), and what
    # external memory cannot train, are refused rather than fit out of memory.
    require_external_memory()
    check_external_memory_params(estimator, numeric=True)
    fits = ("" if ext.fits_memory else "; its own predicted peak is over that too, and it "
            "needs the least memory of the engines")
    return Plan("xgboost-external-memory", "external-memory",
                f"{over}: {peak}: {reads}{fits}; predicted: {compared(preds, ext.engine)}"
                f"{_gain(preds, ext)}; {model}", input=inp, compute=comp, predictions=preds)


def _gain(preds, chosen: Prediction) -> str:
    """How much faster ``chosen`` is predicted than the next engine that fits in memory,
    or that every other engine is excluded."""
    others = [p for p in preds if p is not chosen and p.seconds is not None]
    fitting = [p for p in others if p.fits_memory]
    if fitting:
        best = min(fitting, key=lambda p: p.seconds)
        if chosen.seconds is None:
            return ""
        saved = best.seconds - chosen.seconds
        if saved >= 0:
            return (f"; expected gain: {_secs(saved)} ({saved / best.seconds:.0%}) less "
                    f"than {best.engine}")
        return f"; predicted {_secs(-saved)} slower than {best.engine}"
    excluded = [p.engine for p in others if not p.fits_memory]
    if excluded and chosen.fits_memory:
        return (f"; the only engine whose predicted peak memory fits ("
                f"{', '.join(excluded)} excluded)")
    if excluded and chosen.engine == "dask-ml":
        return (f"; no engine's predicted peak memory fits ({', '.join(excluded)} and "
                "dask-ml, the only one that spills to disk what its workers cannot hold)")
    return ""  # the caller says why it runs what does not fit
