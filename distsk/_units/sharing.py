"""Work planning for searches: which (candidate, fold) fits can share work, exactly.

A search's joblib items are grouped into units of work:

``single``
    One ordinary ``_fit_and_score`` call per item.
``prefix``
    Candidates of a Pipeline that differ only in the final step, on one fold: the
    transformers are fit once (``fit_transform`` on the fold's training data, as
    ``Pipeline.fit`` does) and every candidate fits its final step on that output.
``ensemble``
    Candidates of a seeded forest / gradient boosting model that differ only in
    ``n_estimators`` (``max_iter``), on one fold: the largest is fit once and the
    smaller ones are its first trees / stages, which equal a fresh fit exactly.

Sharing happens only where exactness is proven; everywhere else items stay ``single``.
Each item still runs through sklearn's own ``_fit_and_score``: scoring, errors and
timing are sklearn's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from joblib import hash as joblib_hash
from sklearn.pipeline import Pipeline

from .._compat import _MultimetricScorer, _PassthroughScorer, _safe_split, _Scorer
from .fit_call import FitCall, clone_with

__all__ = ["Unit", "plan_units", "run_unit", "size_param"]


@dataclass
class Unit:
    """A unit of work: ``kind`` and the indices of the items it evaluates."""

    kind: str  # "single", "prefix" or "ensemble"
    indices: list[int] = field(default_factory=list)


def _size_params():
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    return {
        RandomForestClassifier: "n_estimators",
        RandomForestRegressor: "n_estimators",
        ExtraTreesClassifier: "n_estimators",
        ExtraTreesRegressor: "n_estimators",
        GradientBoostingClassifier: "n_estimators",
        GradientBoostingRegressor: "n_estimators",
        HistGradientBoostingClassifier: "max_iter",
        HistGradientBoostingRegressor: "max_iter",
    }


def size_param(estimator) -> str | None:
    """The parameter whose smaller values are prefixes of a larger fit, if any."""
    return _size_params().get(type(estimator))


def _seeded(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _candidate(item):
    """The item's estimator with its candidate parameters applied (a throwaway clone)."""
    call = FitCall.of(item)
    return clone_with(call.estimator, call.candidate_params)


def _key(params: dict, drop) -> tuple:
    return tuple(sorted((k, joblib_hash(v)) for k, v in params.items() if not drop(k)))


def _prefix_key(item):
    """Group key for prefix sharing, or None when this item cannot share exactly."""
    call = FitCall.of(item)
    est = call.estimator
    if type(est) is not Pipeline or len(est.steps) < 2:
        return None
    if est.memory is not None or getattr(est, "transform_input", None) is not None:
        return None
    cand = _candidate(item)
    final_name, final = cand.steps[-1]
    if final == "passthrough" or getattr(final, "copy", True) is False or getattr(
        final, "copy_X", True
    ) is False:
        return None  # the final step could modify the shared transformed data
    for _, step in cand.steps[:-1]:
        if step in (None, "passthrough"):
            continue
        for key, value in step.get_params(deep=True).items():
            if key.endswith("random_state") and not _seeded(value):
                return None  # an unseeded transformer: two fits may differ
    params = call.candidate_params
    return _key(params, lambda k: k == final_name or k.startswith(final_name + "__"))


def _ensemble_key(item, n_train: int):
    call = FitCall.of(item)
    param = size_param(call.estimator)
    params = call.candidate_params
    if param is None or param not in params:
        return None
    cand = _candidate(item)
    p = cand.get_params(deep=False)
    if not _seeded(p.get("random_state")) or p.get("warm_start"):
        return None
    if p.get("oob_score"):
        return None  # out-of-bag scores depend on the whole ensemble
    if param == "n_estimators" and p.get("n_iter_no_change") is not None:
        return None  # GradientBoosting* early stopping
    if "early_stopping" in p and not (
        p["early_stopping"] is False or (p["early_stopping"] == "auto" and n_train <= 10_000)
    ):
        return None
    return _key(params, lambda k: k == param)


def plan_units(items, *, share: bool = True) -> list[Unit]:
    """Group a search's items (joblib ``(func, args, kwargs)``) into units of work.

    Sharing needs the default-shaped item (sklearn's ``_fit_and_score`` keyword
    arguments), no fit parameters, and a scorer that only calls prediction methods.
    """
    groups: dict[tuple, Unit] = {}
    units: list[Unit] = []
    for i, item in enumerate(items):
        kind, key = "single", None
        call = FitCall.of(item)
        if share and _shareable_call(call.kwargs):
            split = call.split_progress[0]
            n_train = len(call.train)
            ekey = _ensemble_key(item, n_train)
            if ekey is not None:
                kind, key = "ensemble", ("ensemble", split, ekey)
            else:
                pkey = _prefix_key(item)
                if pkey is not None:
                    kind, key = "prefix", ("prefix", split, pkey)
        if key is None:
            units.append(Unit("single", [i]))
            continue
        unit = groups.get(key)
        if unit is None:
            unit = groups[key] = Unit(kind, [])
            units.append(unit)
        unit.indices.append(i)
    # A group of one shares nothing.
    for unit in units:
        if len(unit.indices) == 1:
            unit.kind = "single"
    return units


def _shareable_call(kwargs) -> bool:
    call = FitCall(None, (), kwargs)
    if not call.has_fold_keywords:
        return False
    if call.fit_params:
        return False  # routed fit parameters: kept on the ordinary path
    scorer = call.scorer
    scorers = scorer._scorers.values() if isinstance(scorer, _MultimetricScorer) else [scorer]
    # sklearn's scorers only call response methods; a custom callable may inspect the
    # estimator object itself (its class, its attributes), so it is not shared.
    return all(isinstance(s, _Scorer) or _is_passthrough(s) for s in scorers)


def _is_passthrough(scorer) -> bool:
    return isinstance(scorer, _PassthroughScorer)


# ---------------------------------------------------------------------------- running
def run_unit(kind: str, items, on_fit=None) -> tuple[list, int]:
    """Evaluate a unit's items; returns (results, number of full fits made).

    A full fit is an ordinary candidate fit, one shared pipeline prefix fit (the final
    steps fit on its output are not counted) or one shared large ensemble.

    ``on_fit(i, result)``, if given, is called as each independent fit ends (the
    result stream); it may raise to stop the unit before its next fit. Shared units
    (a prefix, an ensemble) finish their fits together and do not call it.
    """
    if kind == "prefix":
        done = _run_prefix(items)
    elif kind == "ensemble":
        done = _run_ensemble(items)
    else:
        done = None
    if done is not None:
        return done
    results = []
    for i, item in enumerate(items):
        results.append(FitCall.of(item).run())
        if on_fit is not None:
            on_fit(i, results[-1])
    return results, len(items)


def _split_train(item):
    call = FitCall.of(item)
    return _safe_split(call.estimator, call.X, call.y, np.asarray(call.train))


def _run_prefix(items):
    first = _candidate(items[0])
    X_train, y_train = _split_train(items[0])
    try:
        prefix = Pipeline(first.steps[:-1])
        Xt = FitCall.of(items[0]).in_callers_context(prefix.fit_transform, X_train, y_train)
    except Exception:
        return None  # each item fits on its own and reports its own error
    fitted = list(prefix.steps)
    results = []
    for item in items:
        call = FitCall.of(item)
        shared = _SharedPrefixPipeline.__new__(_SharedPrefixPipeline)
        shared.__dict__.update(call.estimator.__dict__)
        shared._distsk_shared = (fitted, Xt)
        results.append(call.run(shared))
    return results, 1


def _run_ensemble(items):
    calls = [FitCall.of(item) for item in items]
    param = size_param(calls[0].estimator)
    sizes = [(call.parameters[param], i) for i, call in enumerate(calls)]
    biggest = items[max(sizes)[1]]
    X_train, y_train = _split_train(biggest)
    try:
        big = FitCall.of(biggest).in_callers_context(
            _candidate(biggest).fit, X_train, y_train)
    except Exception:
        return None
    results = []
    for call in calls:
        shared = with_fit(call.estimator, _fit_from_big, _distsk_big=big)
        results.append(call.run(shared))
    return results, 1


class _SharedPrefixPipeline(Pipeline):
    """A Pipeline whose transformers were already fit on this fold's training data."""

    def _fit(self, X, y=None, routed_params=None, raw_params=None, callback_ctx=None):
        fitted, Xt = self._distsk_shared
        self.steps = list(self.steps)
        for i, step in enumerate(fitted):
            self.steps[i] = step
        return Xt


_FIT_CLASSES: dict[tuple[type, object], type] = {}


def with_fit(estimator, fit, **attributes):
    """A copy of the unfitted ``estimator`` whose ``fit`` is ``fit``, with ``attributes``.

    Its class is a subclass named as the estimator's own (so sklearn's scorers, tags and
    messages see the user's class); ``fit`` receives what the estimator's fit would. Used
    for an ensemble taken from a shared larger fit, and (``_halving``) one grown from
    the previous round's model.
    """
    base = type(estimator)
    cls = _FIT_CLASSES.get((base, fit))
    if cls is None:
        cls = _FIT_CLASSES[(base, fit)] = type(base.__name__, (base,), {
            "fit": fit, "__module__": base.__module__, "__qualname__": base.__qualname__,
        })
    copy = cls.__new__(cls)
    copy.__dict__.update(estimator.__dict__)
    copy.__dict__.update(attributes)
    return copy


def _fit_from_big(self, X, y=None, **params):
    """Take the first trees / stages of the shared large fit; equal to a fresh fit."""
    big = self._distsk_big
    param = size_param(big)
    k = getattr(self, param)
    own = set(self.get_params(deep=False))
    for key, value in big.__dict__.items():
        if key not in own and not key.startswith("_distsk"):
            setattr(self, key, value)
    if param == "max_iter":  # HistGradientBoosting*
        self._predictors = big._predictors[:k]
        self.train_score_ = big.train_score_[: k + 1]
        self.validation_score_ = big.validation_score_[: k + 1]
    elif hasattr(big, "n_estimators_"):  # GradientBoosting*
        self.estimators_ = big.estimators_[:k]
        self.n_estimators_ = k
        self.train_score_ = big.train_score_[:k]
        for name in ("oob_improvement_", "oob_scores_"):
            if hasattr(big, name):
                setattr(self, name, getattr(big, name)[:k])
        if hasattr(big, "oob_scores_"):
            self.oob_score_ = self.oob_scores_[-1]
    else:  # forests
        self.estimators_ = big.estimators_[:k]
    return self
