"""The executor contract: the third stage of profile -> plan -> execute.

An executor is a small object with a ``name`` and two methods:

``fit(estimator, X, y, fit_params, ctx) -> estimator``
    Fit an unfitted clone and return the fitted, plain, picklable estimator. Exceptions
    raised by the estimator pass through with their type and message; warnings raised in
    other processes are re-emitted here (``run_recording`` / ``reemit``).
``search_runner(ctx) -> Runner``
    The :class:`Runner` that evaluates a search's units of work (see
    ``_search_engine``), or raise ``ValueError`` if the engine cannot run searches.

The estimator and the search never branch on engine details; they call these.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# Re-exported: what runs in workers lives in ``_worker`` (imported from here, never back).
from .._units.worker import UnitResult, merged, pinned, run_recording, run_unit_remote

__all__ = [
    "ExecutionContext", "Executor", "pinned", "run_recording", "reemit", "fit_estimator",
    "run_unit_remote", "InProcessRunner", "check_picklable", "Runner", "UnitResult", "merged",
    "SEQUENTIAL_OPTION",
]

#: How the user asks for the in-process engine, as error messages tell it: distsk's
#: estimators take ``backend=``; the joblib backend, whose option is ``engine=``, sets
#: this while its calls run (runners check picklability in the caller's thread).
SEQUENTIAL_OPTION: ContextVar[str] = ContextVar("distsk_sequential_option",
                                                default="backend='sequential'")


@dataclass(frozen=True)
class ExecutionContext:
    """What an executor needs beyond the data: the plan and the client (or None)."""

    plan: Any
    client: Any = None


class Executor:
    """Base class; see the module docstring for the contract."""

    name: str = ""

    def fit(self, estimator, X, y, fit_params: dict, ctx: ExecutionContext):
        raise NotImplementedError

    def search_runner(self, ctx: ExecutionContext):
        raise ValueError(f"The {self.name!r} engine does not run searches.")


def check_picklable(estimator, parameters=(), *, where: str) -> None:
    """Raise before any work starts if ``estimator`` cannot travel to ``where``.

    Names the offending parameter: models travel to workers as pickles.
    """
    import cloudpickle

    try:
        cloudpickle.dumps(estimator)
        for params in parameters:
            cloudpickle.dumps(params)
        return
    except Exception as exc:
        cause = exc
    named = dict(estimator.get_params(deep=True)) if hasattr(estimator, "get_params") else {}
    for params in parameters:
        named.update(params)
    for name, value in named.items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"Parameter {name!r} of {type(estimator).__name__} holds a "
                f"{type(value).__name__} ({value!r:.80}), which cannot be sent to {where}: "
                f"{type(exc).__name__}: {exc}. Estimators travel to workers as pickles; pass "
                "something picklable (a path rather than an open file, a seed rather than "
                f"a generator), or use {SEQUENTIAL_OPTION.get()}."
            ) from exc
    raise TypeError(
        f"{type(estimator).__name__} cannot be sent to {where}: "
        f"{type(cause).__name__}: {cause}. Use {SEQUENTIAL_OPTION.get()}."
    ) from cause


def fit_subforest(forest, start, stop, X, y, fit_params):
    """Fit trees ``start:stop`` of ``forest`` exactly as a full local fit would make them.

    sklearn's warm start draws and discards one seed per existing tree before seeding the
    new ones, so a forest with ``start`` placeholder trees grown to ``stop`` builds the very
    trees ``start:stop`` of a fresh fit with the same random_state.
    """
    import warnings

    sub = forest.set_params(n_estimators=stop, n_jobs=1)
    if start:
        sub.set_params(warm_start=True)
        sub.estimators_ = [None] * start
        with warnings.catch_warnings():
            # This warm-start warning is about refitting on other data, not our case.
            warnings.filterwarnings("ignore", message="class_weight presets")
            fit_estimator(sub, X, y, fit_params)
        sub.estimators_ = sub.estimators_[start:]
    else:
        fit_estimator(sub, X, y, fit_params)
    return sub


def forest_warnings(parts):
    """The warnings of a forest fit split into sub-forest fits, as one fit gives them.

    Every part runs the forest's ``fit`` prologue (input checks), so its warnings (a
    column-vector y's DataConversionWarning) came once per part: the first part's are
    kept whole, and of the others only warnings the first part did not give.
    """
    first = parts[0]
    seen = {(category, str(message)) for message, category in first}
    return first + [(m, c) for part in parts[1:] for m, c in part if (c, str(m)) not in seen]


def merge_forests(original, parts):
    """The forest ``original`` fit whole, from its parts (``fit_subforest``) in order."""
    merged = parts[0]
    merged.estimators_ = [tree for part in parts for tree in part.estimators_]
    params = original.get_params(deep=False)
    merged.set_params(
        n_estimators=params["n_estimators"], n_jobs=params["n_jobs"],
        warm_start=params["warm_start"],
    )
    return merged


def with_callers_config(func):
    """``func``, to run on a Dask worker under this thread's scikit-learn configuration
    and warning filters, as sklearn's ``Parallel`` sends its calls (a worker's own
    configuration is the default one)."""
    from sklearn import get_config

    from .._compat import with_callers_settings

    filters = getattr(warnings, "_get_filters", lambda: warnings.filters)()
    return with_callers_settings(func, get_config(), filters)


def fit_estimator(estimator, X, y, fit_params):
    # y is always passed, as Pipeline does: sklearn's fit(X, y=None) convention, and the
    # estimator's own error when it requires y.
    return estimator.fit(X, y, **fit_params)


def fit_received(estimator, X, y, fit_params):
    """``fit_estimator`` on data as a Dask worker received it, laid out afresh first.

    Arrays that arrived over the network can be views at odd addresses of a receive
    buffer, which sends BLAS down other code paths and changes last bits of a model
    (fold fits are not affected: a fold's rows are a fresh copy).
    """
    return fit_estimator(estimator, laid_out(X), laid_out(y), fit_params)


def laid_out(value):
    """An array that does not own its memory (a view into a receive buffer), copied to
    memory of its own; anything else as it is (see ``fit_received``)."""
    import numpy as np

    if isinstance(value, np.ndarray) and not value.flags.owndata:
        return np.array(value, order="K", copy=True)
    return value


def reemit(recorded) -> None:
    for message, category in recorded:
        if isinstance(message, Warning):
            warnings.warn(message, stacklevel=3)
        else:
            warnings.warn(str(message), category, stacklevel=3)


class Runner(abc.ABC):
    """How an executor runs a search's units of work; used by ``SearchEngine``.

    A unit (see ``_units/sharing.py``) is a ``kind`` ("single", "prefix" or "ensemble")
    and a list of collected ``_fit_and_score`` calls (``FitCall``). A runner must
    implement :meth:`submit`; every other method is a hook with a no-op default, and
    the class flags say what the engine may ask of it. ``SearchEngine`` calls, in order:
    ``prepare`` once with every item to run, ``submit_many`` / ``submit`` (and ``check``
    while it waits) until every unit is done, ``flush``; on an error ``cancel`` then
    ``lost``; and ``close`` at the end of the search.

    The result stream (runners with ``streams``): while the engine runs a call it sets
    :attr:`report`; the runner then calls ``report(items, i, result)`` as fit ``i`` of a
    unit ends -- ``items`` the very list object passed to ``submit``, ``result`` the
    fit's ``_fit_and_score`` dict -- from any thread, possibly before ``submit``
    returns (in process), possibly twice for one fit (a straggler's copy, a re-run),
    and never for some fits (shared units, whose fits end together; a fit whose result
    could not travel): every fit is still in the unit's :class:`UnitResult`, which
    stays complete. ``report`` returns False when the engine no longer wants that unit
    (stopped, or its copy's result is in): the runner then stops the unit before its
    next fit if it can, and its future's outcome is ignored. ``report(items, -1,
    None)`` reports nothing and only asks whether a unit may start (a runner that
    queues units asks it before the first fit). Runners without the flag report
    nothing and keep working: their fits arrive with their unit.
    """

    #: Units that run at once. Read before every dispatch, so it may change during a
    #: search (a Dask cluster that grows or shrinks).
    slots: int = 1
    #: Units run in other processes, so their items are pickled: the engine first cuts
    #: each sklearn callback context down to its own path (``_callbacks.portable``).
    remote: bool = False
    #: Worth keeping for a joblib block's next ``Parallel`` call (see :meth:`retain`):
    #: it holds data sent ahead that the next call may pass again. Others (a loky pool
    #: is joblib's shared one anyway) are made afresh for each call.
    reusable: bool = False
    #: Set before its first use when a ``reusable`` runner will serve several calls: it
    #: may then spend a pass over what it sends ahead, to tell later whether it changed.
    kept: bool = False
    #: The engine may run a straggling unit a second time (``submit(..., avoid=)``) and
    #: ``discard`` the copy that finishes last. Only for runners with several machines
    #: (a unit slow on one worker may not be slow on another) whose fits are safe to
    #: run twice.
    speculates: bool = False
    #: Calls :attr:`report` for each fit of a unit as it ends (see the class docstring).
    streams: bool = False
    #: Set by the engine while it runs a call, else None: ``report(items, i, result)
    #: -> bool``, thread-safe and cheap (it only queues the result for the engine).
    report = None

    @abc.abstractmethod
    def submit(self, kind: str, items: list, avoid: cf.Future | None = None
               ) -> cf.Future | None:
        """Start a unit; return a future whose result is a :class:`UnitResult`.

        Exceptions raised by the fits are set on the future, unchanged. ``avoid`` (only
        passed when ``speculates``): the future of a running copy of this unit, whose
        place this copy must avoid; return None when there is no other place.
        """

    def submit_many(self, units: list[tuple[str, list]]) -> list[cf.Future]:
        """Start several ``(kind, items)`` units at once; a runner for which one
        request is cheaper than many (one graph to a Dask scheduler) overrides this."""
        return [self.submit(kind, items) for kind, items in units]

    def prepare(self, items: list) -> None:  # noqa: B027 (a no-op hook on purpose)
        """Called once before any unit is submitted, with every item to run: check
        that they can travel, send large shared arguments ahead."""

    def retain(self, items: list) -> None:  # noqa: B027
        """Called before ``prepare`` when the runner is used again for another joblib
        ``Parallel`` call (the joblib backend keeps one runner per
        ``distsk.parallel_backend`` block), with that call's items: keep what was sent
        ahead only where these items pass the same, unchanged object; release the rest."""

    def check(self) -> None:  # noqa: B027
        """Called about once a second while the engine waits: raise if the place where
        units run is gone."""

    def flush(self) -> None:  # noqa: B027
        """Called after the last unit's result: wait for anything still in transit
        that is part of the results (callback events)."""

    def discard(self, future: cf.Future) -> None:
        """Drop a unit whose twin's result is already in (``speculates`` only)."""
        future.cancel()

    def cancel(self) -> None:  # noqa: B027
        """Drop pending work (an error, or joblib aborting)."""

    def lost(self, exc: BaseException) -> str | None:
        """Why the place where units run is gone, if ``exc`` came from losing it (the
        engine then raises ``ClusterUnavailableError``); None re-raises ``exc``."""
        return None

    def close(self) -> None:  # noqa: B027
        """Release pools, data and subscriptions at the end of the search."""


class InProcessRunner(Runner):
    """Runs units here, one at a time; the fits' own parallelism is left as it is.

    Streams: each fit is reported as it ends, in this thread (the engine stores it
    before the next fit starts); a unit the engine no longer wants stops there.
    """

    slots = 1
    streams = True

    def submit(self, kind, items, avoid=None):
        from .._units.sharing import run_unit

        future = cf.Future()
        report = self.report
        on_fit = None
        if report is not None:
            if report(items, -1, None) is False:  # dropped before it started
                future.cancel()
                return future

            def on_fit(i, result):
                if report(items, i, result) is False:
                    raise _Unwanted

        try:
            results, n_fits = run_unit(kind, items, on_fit)
        except _Unwanted:
            future.cancel()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(UnitResult(results, n_fits))
        return future


class _Unwanted(Exception):
    """The engine no longer wants the unit running here: it stops between two fits."""
