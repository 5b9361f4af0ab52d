"""Engine specs: what each engine can run, declared in one place the planner loops over.

One :class:`EngineSpec` per engine (threadpoolctl's ``_ALL_CONTROLLERS`` is the model:
one list is the truth, every other list is derived from it). A spec is data and pure
functions only: it imports no engine and no optional dependency, so planning reads it
without starting anything. ``distsk/_engines/__init__.py`` maps the same names to the
executor classes (imported on first use); a test checks the two agree.

Adding an engine: its module under ``distsk/_engines/``, one spec here, one ``ENGINES``
line there (and a pure rules module beside this one when it has rules of its own, as
``dask_ml_rules`` and ``xgboost_rules``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import cost_large as cl
from . import cost_model as cm
from .dask_ml_rules import dask_ml_support
from .plan import slots
from .profile import ComputeProfile
from .xgboost_rules import is_xgboost_model

__all__ = ["EngineSpec", "SPECS", "spec", "engine_names"]


@dataclass(frozen=True)
class EngineSpec:
    """What one engine can do, as the planner asks it."""

    name: str
    #: Has a search runner (``Executor.search_runner``): runs a search's candidates x
    #: folds, so ``DistributedSearchCV(backend=name)`` accepts it.
    runs_searches: bool = False
    #: Runs on a Dask cluster: planning refuses it when there is none.
    needs_cluster: bool = False
    #: Fits in this process, on in-memory data (dask input is gathered first).
    in_process: bool = False
    #: Fits dask input over the gather limit where it lives, never gathering it.
    larger_than_memory: bool = False
    #: ``refuses(estimator)``: why this engine cannot fit ``estimator`` (a sentence for
    #: the ValueError of a forced backend), or None when it can. None: fits any
    #: estimator. May raise ``NoFaithfulTranslationError`` for a setting it cannot honour.
    refuses: Callable[[object], str | None] | None = None
    #: Its predicted cost of a search's candidates x folds: ``(name, SearchWork) ->
    #: Prediction`` (None: cannot run one, or not here). ``cost_model.search_*``.
    predict_search: Callable[[str, cm.SearchWork], cm.Prediction | None] | None = None
    #: Its predicted cost of a fit of dask input over the gather limit: ``(name,
    #: LargeCase) -> Prediction`` (None: cannot fit this one). ``cost_large.large_*``.
    predict_large: Callable[[str, cl.LargeCase], cm.Prediction | None] | None = None
    #: How it runs a search, for the plan: ``(compute, n_jobs) -> (slots, what happens)``
    #: (the reason's words after the facts). Engines that run searches have one.
    search_plan: Callable[[ComputeProfile, object], tuple[int, str]] | None = None

    def can_fit(self, estimator) -> bool:
        return self.refuses is None or self.refuses(estimator) is None


def _search_in_process(comp: ComputeProfile, n_jobs) -> tuple[int, str]:
    return 1, "in this process"


def _search_on_loky(comp: ComputeProfile, n_jobs) -> tuple[int, str]:
    n = slots(n_jobs, comp.local_cores)
    return n, (f"candidates x folds run on {n} local loky processes, inner parallelism "
               "pinned to one thread per fit")


def _search_on_dask(comp: ComputeProfile, n_jobs) -> tuple[int, str]:
    return slots(n_jobs, comp.worker_threads), (
        f"candidates x folds run as Dask tasks on {comp.worker_threads} worker threads, "
        "data scattered to each worker once, folds sent as indices, inner parallelism "
        "pinned to one thread per task")


def _dask_ml_refuses(estimator) -> str | None:
    if dask_ml_support(estimator) is not None:
        return None
    return (f"backend='dask-ml' has no equivalent of {type(estimator).__name__}: it runs "
            "LogisticRegression, LinearRegression, PoissonRegressor, KMeans, PCA, "
            "TruncatedSVD, StandardScaler, MinMaxScaler, and estimators with partial_fit. "
            "Use backend='auto'.")


def _xgboost_refuses(name: str) -> Callable[[object], str | None]:
    def refuses(estimator) -> str | None:
        if is_xgboost_model(estimator):
            return None
        return (f"backend={name!r} trains xgboost models only; got "
                f"{type(estimator).__name__}. Use backend='auto' or 'dask-ml', or wrap an "
                "xgboost.XGBClassifier/XGBRegressor.")
    return refuses


#: Every engine, in the order plans list their predictions.
SPECS = (
    EngineSpec("sequential", runs_searches=True, in_process=True,
               predict_search=cm.search_sequential, predict_large=cl.large_gathered,
               search_plan=_search_in_process),
    EngineSpec("loky", runs_searches=True, in_process=True,
               predict_search=cm.search_loky, predict_large=cl.large_gathered,
               search_plan=_search_on_loky),
    EngineSpec("dask", runs_searches=True, needs_cluster=True,
               predict_search=cm.search_dask, search_plan=_search_on_dask),
    EngineSpec("dask-ml", needs_cluster=True, larger_than_memory=True,
               refuses=_dask_ml_refuses, predict_large=cl.large_dask_ml),
    EngineSpec("xgboost", needs_cluster=True, larger_than_memory=True,
               refuses=_xgboost_refuses("xgboost"), predict_large=cl.large_xgboost),
    EngineSpec("xgboost-external-memory", needs_cluster=True, larger_than_memory=True,
               refuses=_xgboost_refuses("xgboost-external-memory"),
               predict_large=cl.large_external_memory),
)

_BY_NAME = {s.name: s for s in SPECS}


def spec(name: str) -> EngineSpec:
    """The spec of the engine called ``name`` (KeyError for an unknown one)."""
    return _BY_NAME[name]


def engine_names(*, runs_searches: bool | None = None, needs_cluster: bool | None = None,
                 larger_than_memory: bool | None = None) -> tuple[str, ...]:
    """Names of the engines with these capabilities (None: either), in registry order."""
    return tuple(
        s.name for s in SPECS
        if (runs_searches is None or s.runs_searches == runs_searches)
        and (needs_cluster is None or s.needs_cluster == needs_cluster)
        and (larger_than_memory is None or s.larger_than_memory == larger_than_memory)
    )
