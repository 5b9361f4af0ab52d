"""The halving searches' rounds on distsk's loop: survivors grow, idle slots start
the next round.

``_GrowingEngine`` is the search loop of ``DistributedHalvingGridSearchCV`` and
``DistributedHalvingRandomSearchCV`` (``distsk._face.halving``); ``_NextRound`` says how
a call of this round becomes the next round's; ``_fit_and_keep`` / ``_grow_fit`` are the
growth step that runs where the fits run.
"""

from __future__ import annotations

import numpy as np

from .._units.callbacks import has_callbacks, portable
from .._units.fit_call import FitCall
from .._units.sharing import _ensemble_key, _prefix_key, _shareable_call, size_param, with_fit
from .call import Running
from .checkpoint import ItemKeys
from .loop import SearchEngine, rank_candidates

__all__ = ["RUN_AHEAD"]

#: Whether idle slots start the next round's fits (``_GrowingEngine._idle``); switched
#: off only to measure what running ahead brings (benchmarks/halving_sim.py).
RUN_AHEAD = True


# ------------------------------------------------------------------- the next round
class _NextRound:
    """The next round, as sklearn's ``_run_search`` will make it, known one round early
    so that idle slots can start it: how a (candidate, fold) call of this round becomes
    that candidate's call of the next round, and how many candidates survive.

    Built from sklearn's formulas (``_DistributedHalving._round_ahead``); a call made
    here is used only when the next round's own call has the same checkpoint key, so a
    formula that drifted from sklearn's wastes work and never changes a result.
    """

    def __init__(self, n_keep: int, resource: str, n_resources: int, cv=None, recorder=None):
        self.n_keep, self.resource, self.n_resources = n_keep, resource, n_resources
        self._cv, self._recorder, self._splits = cv, recorder, None

    def splits(self):
        """The next round's (train, test) per fold (resource n_samples), once this
        round's split has been drawn; else None."""
        if self._splits is None and self._recorder is not None and (
                self._recorder.splits is not None):
            self._splits = list(self._cv.split(None, None))
        return self._splits

    def call(self, call: FitCall, result: dict) -> FitCall | None:
        """The next round's call for ``call``'s candidate and fold (None: not known)."""
        fold = call.split_progress[0]
        if self.resource == "n_samples":
            splits = self.splits()
            if splits is None:
                return None
            train, test = splits[fold]
            changes: dict = {"train": train, "test": test}
        else:
            params = {**call.candidate_params, self.resource: self.n_resources}
            changes = {"parameters": params}
        if "distsk_previous" in call.kwargs:  # grown from this round's model (_growing)
            kept = result.get("estimator")
            model = kept[2] if kept else None
            size = call.candidate_params[self.resource]
            changes["distsk_previous"] = (
                (size, model) if model is not None and size < self.n_resources else None)
        return call.with_keywords(**changes)


class _RecordingSplitter:
    """A CV splitter that records its splits, then replays them: this round's base
    splits, from which the next round's subsamples are drawn ahead."""

    def __init__(self, cv):
        self.cv, self.splits = cv, None

    def split(self, X, y=None, **params):
        if self.splits is None:
            self.splits = list(self.cv.split(X, y, **params))
        yield from self.splits

    def get_n_splits(self, X=None, y=None, **params):
        return self.cv.get_n_splits(X, y, **params)


# ------------------------------------------------------------------------- growth
class _GrowingEngine(SearchEngine):
    """The halving searches' SearchEngine: survivors grow, idle slots start next rounds.

    Growth: when the halving resource is the estimator's size parameter
    (``n_estimators`` of a seeded forest or gradient boosting, ``max_iter`` of
    HistGradientBoosting), a candidate that survives round k has its round-k model of
    each fold kept; in round k+1 the same (candidate, fold) fit adds only the missing
    trees to it (warm start), which gives exactly the model a fresh fit gives for the
    conditions of ``_sharing._ensemble_key`` (seeded, no warm start, no out-of-bag
    score, no early stopping) and no fit parameters; anything else is fit fresh. Only
    the last round's models are kept.

    Running ahead: at the end of a round, slots left idle while its last fits finish
    start the next round's fits of the candidates ranked best so far (``_idle``); they
    keep running past the round's end. The next round takes over those whose call has
    the checkpoint key of one of its own (``_carried``) and discards the others (their
    candidate was eliminated): their results appear nowhere.
    """

    def __init__(self, runner, *, resource, **options):
        super().__init__(runner, **options)
        self.resource = resource
        self.counts_trees = False
        self.n_grown = 0
        self.n_trees = 0
        self._models: dict = {}  # growth key -> (size, fitted model), last round only
        self._pending: list = []  # (result dict, growth key) of this round's items
        #: Set by the search before each round: how to start the next one (or None).
        self.next_round: _NextRound | None = None
        self.n_ahead = 0  # next-round fits run ahead whose results were used
        self.n_discarded = 0  # ... whose candidate was eliminated
        # Next-round fits running ahead: future -> (hint, checkpoint key of its call, unit).
        self._ahead: dict = {}
        self._ahead_keys = ItemKeys()
        self._started: set[int] = set()  # this round's items whose next call runs ahead

    def register(self, items):
        items = [self._growing(FitCall.of(item)) for item in items]
        results = super().register([item for item, _ in items])
        self._pending.extend(zip(results, (key for _, key in items)))
        return results

    def _growing(self, call: FitCall):
        estimator, params = call.estimator, call.candidate_params
        if size_param(estimator) != self.resource or self.resource not in params:
            return call, None
        self.counts_trees = True
        key = None
        if _shareable_call(call.kwargs) and not _balanced(estimator, params):
            group = _ensemble_key(call, len(call.train))
            if group is not None:
                key = (group, call.split_progress[0], _fold_key(call.train))
        previous = None
        if key is not None and key in self._models:
            size, model = self._models[key]
            if size < params[self.resource]:
                previous = (size, model)
        grown = call.calling(_fit_and_keep, distsk_previous=previous,
                             distsk_keep=key is not None, distsk_resource=self.resource)
        return grown, key

    def run(self):
        pending, self._pending = self._pending, []
        self._started = set()
        try:
            super().run()
        finally:
            self.next_round = None
        models = {}
        for result, key in pending:
            kept = result.pop("estimator", None)
            if kept is None:  # resumed from the checkpoint, or not a size resource
                continue
            grown_from, trees, model = kept
            self.n_trees += trees
            self.n_grown += grown_from is not None
            if model is not None:
                models[key] = (getattr(model, self.resource), model)
        self._models = models  # the previous round's models are no longer needed

    def _idle(self, free, items, results):
        """Start the next round's fits of the best-ranked candidates on ``free`` slots.

        Candidates are ranked by the mean test score of their finished folds (sklearn
        keeps the ``n_keep`` best by the mean over all folds); for each of the best
        ``n_keep``, best first, each fold's next call is started (one that grows the
        fold's model, once that model is there). Returns the fits ahead still running.
        """
        ahead = self.next_round
        running = [future for future in self._ahead if not future.done()]
        if ahead is None or not RUN_AHEAD or self.runner.slots < 2 or not items:
            return running
        if has_callbacks(items) or FitCall.of(items[0]).verbose > 9:
            # A fit run ahead would report to the wrong round's callbacks; sklearn's
            # most verbose output names the candidate's place in its round.
            self.next_round = None
            return running
        free -= len(running)
        if free > 0:
            self._start_ahead(ahead, free, items, results)
        return [future for future in self._ahead if not future.done()]

    def _start_ahead(self, ahead, free, items, results):
        ranked = rank_candidates(items, results)
        for _, _done, indices in ranked[: ahead.n_keep]:
            # A fold's next fit that grows its model waits for it; others start at once.
            for i in indices:
                if free <= 0:
                    return
                if i in self._started or (results[i].get("fit_error") is not None):
                    continue
                if not results[i] and "distsk_previous" in FitCall.of(items[i]).kwargs:
                    continue
                self._started.add(i)
                call = ahead.call(FitCall.of(items[i]), results[i])
                if call is None or self._shared(call):
                    continue
                batch = portable([call]) if self.runner.remote else [call]
                future = self.runner.submit("single", batch)
                self._ahead[future] = (_hint(call), self._ahead_keys.key(call),
                                       Running("single", [], batch))
                free -= 1

    def _shared(self, call: FitCall) -> bool:
        """Whether the next round would share this fit's work with other candidates'
        (a pipeline prefix, an ensemble's sizes): it is then left to the round, where
        it costs less, rather than run ahead alone. (A round's candidates all have the
        same size resource: growing fits never form an ensemble.)"""
        if not self.share or not _shareable_call(call.kwargs):
            return False
        if _prefix_key(call) is not None:
            return True
        param = size_param(call.estimator)
        return (param is not None and param != self.resource
                and _ensemble_key(call, len(call.train)) is not None)

    def _carried(self, items, todo):
        ahead, self._ahead = self._ahead, {}
        if not ahead:
            return {}
        # The checkpoint key decides; a cheap hint first spares hashing every call of
        # a large round (an estimator's fingerprint takes ~0.1 ms).
        hints = {hint for hint, _, _ in ahead.values()}
        by_key = {key: (future, running) for future, (_, key, running) in ahead.items()}
        carried = {}
        for i in todo:
            if _hint(items[i]) not in hints:
                continue
            hit = by_key.pop(self._ahead_keys.key(items[i]), None)
            if hit is not None:
                future, running = hit
                running.indices = [i]
                carried[future] = running
        self._discard(future for future, _ in by_key.values())
        self.n_ahead += len(carried)
        return carried

    def _discard(self, futures):
        for future in futures:
            self.runner.discard(future)
            self.n_discarded += 1

    def close(self):
        ahead, self._ahead = self._ahead, {}
        self._discard(ahead)
        super().close()


def _hint(item) -> tuple:
    """A cheap stand-in for a call's checkpoint key: equal keys have equal hints."""
    call = FitCall.of(item)
    fold = call.split_progress[0] if call.split_progress else None
    return fold, repr(sorted(call.candidate_params.items(), key=lambda kv: kv[0]))


def _balanced(estimator, params) -> bool:
    # A warm start with class_weight="balanced*" warns where a fresh fit does not.
    weight = params.get("class_weight", estimator.get_params(deep=False).get("class_weight"))
    return isinstance(weight, str)


def _fold_key(train) -> str:
    from joblib import hash as joblib_hash

    return joblib_hash(np.asarray(train))


def _fit_and_keep(estimator, X, y, *, distsk_previous=None, distsk_keep=False,
                  distsk_resource, **kwargs):
    """sklearn's ``_fit_and_score``, grown from ``distsk_previous`` (size, model) if given.

    The result's "estimator" is ``(grown_from, trees_fitted, model)``: ``model`` the
    fitted model to grow next round (when ``distsk_keep`` and the fit succeeded);
    ``distsk_resource`` the size parameter, as the client decided it.
    """
    from .._compat import _fit_and_score

    call = FitCall(_fit_and_score, (estimator, X, y), kwargs)
    grown_from = None
    if distsk_previous is not None:
        grown_from, model = distsk_previous
        estimator = with_fit(estimator, _grow_fit, _distsk_previous=model)
    result = call.with_keywords(return_estimator=True).run(estimator)
    model = result.pop("estimator", None)
    size = call.candidate_params[distsk_resource]
    keep = distsk_keep and result.get("fit_error") is None and model is not None
    result["estimator"] = (grown_from, size - (grown_from or 0), model if keep else None)
    return result


def _grow_fit(self, X, y=None, **params):
    """Add the missing trees to the previous round's model (warm start), as the
    estimator's own class does."""
    base = type(self).__mro__[1]
    previous = self.__dict__.pop("_distsk_previous")
    own = set(self.get_params(deep=False))
    for key, value in previous.__dict__.items():
        if key in own or key.startswith(("_distsk", "_callback", "_parent_callback")):
            continue
        # Lists grow in place under a warm start: the previous model keeps its own.
        setattr(self, key, list(value) if isinstance(value, list) else value)
    self.__class__ = base  # from here on an ordinary model of the user's class
    self.warm_start = True
    try:
        base.fit(self, X, y, **params)
    finally:
        self.warm_start = False
    return self
