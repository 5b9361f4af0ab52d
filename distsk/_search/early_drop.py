"""Early dropping of weak candidates (``early_drop=``, issue #24): an opt-in departure
from sklearn's results, off by default.

The run
    The search's fits are queued fold by fold across candidates: round ``k`` is every
    candidate's fold ``k`` (``SearchEngine.by_fold``: batches stay in a fold), and
    once a round is in, each later fold's fits strongest candidate first (mean score
    so far), so a weak candidate's next fits are still queued when it is dropped. When a round is complete (every
    candidate still running has its folds ``0..k``; finished in any order, on any
    engine), each such candidate is compared with the round's leader (the highest mean
    score over those folds): with ``d_i`` the leader's score minus the candidate's on
    fold ``i``, ``n = k + 1`` folds, the candidate is dropped when

        mean(d) - t(confidence, n - 1) * std(d) / sqrt(n) > 0,

    the one-sided paired t-test of "the leader is better" at the confidence the user
    set (``std`` with ``n - 1`` degrees of freedom; from 2 folds on). A dropped
    candidate's queued folds never start (``SearchEngine.cancel``); one already running
    ends, and is kept in the checkpoint, but not reported. Candidates sharing a large
    ensemble's fits are dropped together or not at all (the largest fit runs while one
    of them needs it); a candidate sharing a pipeline prefix is dropped alone: the
    prefix runs for the others, its final steps do not. Decisions read only the
    scores, so a search drops the same candidates on every engine, in any order of
    arrival, and after a resume. A candidate with a non-finite score is never dropped
    nor the leader (sklearn's error reports stay whole).

The report
    sklearn's ``evaluate_candidates`` again (``distsk._search.budget``'s report pass),
    served from the store: a dropped candidate's folds up to its last round are its
    own results; its other folds are reported with NaN scores and times (never run),
    so sklearn's ``mean_test_score`` is NaN and its rank comes after every candidate
    that finished (``best_index_`` never points at one). sklearn warns that some test
    scores are non-finite, as for failed fits.
"""

from __future__ import annotations

import math

import numpy as np

from .call import fold_of

__all__ = ["EarlyDrop"]


class EarlyDrop:
    """The drop decisions of one search's ``fit``.

    ``confidence`` in (0, 1); ``metric``: the scorer's name with several scorers (the
    one ``refit`` names), else None.
    """

    def __init__(self, confidence: float, metric: str | None = None):
        self.confidence = float(confidence)
        self.metric = metric
        #: Over every run of this fit: candidates dropped and fits they did not run.
        self.n_dropped = 0
        self.n_fits_saved = 0
        #: Rows of ``cv_results_`` of the candidates dropped (set by the report).
        self.rows: list[int] = []
        self.on_drop = None  # called with (candidates, fits saved): the progress bar
        self._reset([], [])

    def _reset(self, calls: list, results: list) -> None:
        self.calls, self.results = calls, results
        self._groups: list[list[int]] = []  # per candidate: its calls' indices by fold
        self._of: dict[int, int] = {}  # call index -> candidate
        self._alive: set[int] = set()
        self._last: dict[int, int] = {}  # candidate dropped -> its last round
        self._round = 0  # the next round to decide (rounds 0.. are folds)
        self._keys: list[str] | None = None
        self._pos: dict[int, int] = {}  # call index -> its round (fold order)
        self._by_id: dict[int, int] = {}  # id(candidate's parameters) -> candidate
        # Per round: candidates still running whose result of that round is not in
        # (kept as fits arrive, so a fit costs O(1) until a round completes).
        self._missing: list[int] = []

    # ------------------------------------------------------------------ the run
    def begin(self, engine, calls: list, results: list) -> None:
        """A run's calls (FitCalls) and their result dicts, before it starts."""
        self._reset(calls, results)
        by_candidate = self._by_id  # id(parameters) -> candidate
        for i, call in enumerate(calls):
            c = by_candidate.setdefault(id(call.parameters), len(by_candidate))
            if c == len(self._groups):
                self._groups.append([])
            self._groups[c].append(i)
            self._of[i] = c
        for group in self._groups:
            group.sort(key=lambda i: fold_of(calls[i]))
            self._pos.update((i, p) for p, i in enumerate(group))
        self._alive = set(range(len(self._groups)))
        self._sharing = self._shared(calls, engine.share)
        engine.by_fold = True

    def _shared(self, calls: list, share: bool) -> dict[int, set[int]]:
        """Candidate -> the candidates whose fits share a large ensemble's unit with its
        (``plan_units`` over all the run's calls, so the same after a resume). A
        candidate is dropped only with all of them: the ensemble's largest fit runs
        while one of its candidates needs it, and dropping the others would save
        nothing. A pipeline prefix binds no one: a dropped candidate's final steps are
        cut from its queued units (``Call.cancel``), which saves them."""
        from .._units.sharing import plan_units

        parent = list(range(len(self._groups)))

        def root(c):
            while parent[c] != c:
                parent[c] = parent[parent[c]]
                c = parent[c]
            return c

        for unit in plan_units(calls, share=share):
            if unit.kind != "ensemble":
                continue
            first = root(self._of[unit.indices[0]])
            for i in unit.indices[1:]:
                parent[root(self._of[i])] = first
        out: dict[int, set[int]] = {}
        for c in range(len(parent)):
            out.setdefault(root(c), set()).add(c)
        return {c: out[root(c)] for c in range(len(parent))}

    def started(self, engine, keys: list[str] | None) -> None:
        """The run's queue is planned (resumed fits are in): rounds complete already.
        ``keys``: the calls' checkpoint keys, taken before any fit ran (a fit run in
        process changes its call's estimator, and so the key computed from it)."""
        self._keys = keys
        rounds = min((len(g) for g in self._groups), default=0)
        self._missing = [sum(1 for g in self._groups if not self.results[g[p]])
                         for p in range(rounds)]
        self._decide(engine)

    def fit_done(self, engine, index: int) -> None:
        """Fit ``index`` of the run has its result (once per fit)."""
        if self._of.get(index) in self._alive and self._pos[index] < len(self._missing):
            self._missing[self._pos[index]] -= 1
            self._decide(engine)

    def _decide(self, engine) -> None:
        missing = self._missing
        while (self._round < len(missing) and not missing[self._round]
               and len(self._alive) > 1):
            k = self._round
            scores = {c: self._scores(c, k) for c in self._alive}
            self._round += 1
            if k:
                self._drop_behind(engine, k, scores)
            self._strongest_first(engine, scores)

    def _strongest_first(self, engine, scores: dict) -> None:
        """Queue each later fold's fits strongest candidate first (mean score so far):
        the weak ones' come last, so most are still queued when a drop comes."""
        strength = {c: (s.mean() if s is not None and np.all(np.isfinite(s)) else -np.inf)
                    for c, s in scores.items() if c in self._alive}
        calls, of = self.calls, self._of

        def key(unit):
            return (fold_of(calls[unit.indices[0]]),
                    -max(strength.get(of.get(i), -np.inf) for i in unit.indices))

        engine.reorder(key)

    def _drop_behind(self, engine, k: int, scores: dict) -> None:
        finite = {c: s for c, s in scores.items()
                  if s is not None and np.all(np.isfinite(s))}
        if len(finite) < 2:
            return
        leader = max(finite, key=lambda c: (finite[c].mean(), -c))
        t = _t_quantile(self.confidence, k)
        behind = set()
        for c, s in finite.items():
            d = finite[leader] - s
            if c != leader and d.mean() - t * d.std(ddof=1) / math.sqrt(k + 1) > 0:
                behind.add(c)
        dropped = sorted(c for c in behind
                         if all(o in behind or o not in self._alive for o in self._sharing[c]))
        cancel = set()
        for c in dropped:
            self._alive.discard(c)
            self._last[c] = k
            later = self._groups[c][k + 1:]
            cancel.update(later)
            for i in later:  # no longer awaited by its round
                if not self.results[i] and self._pos[i] < len(self._missing):
                    self._missing[self._pos[i]] -= 1
        if dropped:
            saved = engine.cancel(cancel)  # the fits already out run on, unreported
            self.n_dropped += len(dropped)
            self.n_fits_saved += saved
            if self.on_drop is not None:
                self.on_drop(len(dropped), saved)

    def _scores(self, c: int, k: int):
        """Candidate ``c``'s scores on folds ``0..k``, or None if one is missing."""
        group = self._groups[c]
        if len(group) <= k:
            return None
        out = []
        for i in group[: k + 1]:
            result = self.results[i]
            if not result:
                return None
            out.append(_score(result, self.metric))
        return np.asarray(out, dtype=float)

    # ------------------------------------------------------------------ the report
    def is_dropped(self, params) -> bool:
        """Whether the candidate of parameters ``params`` was dropped in the last run:
        by identity (sklearn hands the report the run's own dicts), else by value."""
        candidate = self._by_id.get(id(params))
        if candidate is not None:
            return candidate in self._last
        return any(self.calls[self._groups[c][0]].parameters == params for c in self._last)

    def not_run(self) -> dict[str, dict]:
        """``{checkpoint key: result}`` for the dropped candidates' folds after their
        last round: NaN scores and times, as reported."""
        if not self._last or self._keys is None:
            return {}
        by_fold: dict[int, dict] = {}
        for i, call in enumerate(self.calls):
            if self.results[i]:
                by_fold.setdefault(fold_of(call), self.results[i])
        out = {}
        for c, k in self._last.items():
            for i in self._groups[c][k + 1:]:
                call = self.calls[i]
                template = by_fold.get(fold_of(call)) or self.results[self._groups[c][0]]
                out[self._keys[i]] = _nan_result(template, call.parameters)
        return out


def _score(result: dict, metric: str | None) -> float:
    scores = result.get("test_scores")
    if isinstance(scores, dict):
        scores = scores.get(metric) if metric is not None else next(iter(scores.values()))
    try:
        return float(scores)
    except (TypeError, ValueError):
        return math.nan


def _nan_like(scores):
    if isinstance(scores, dict):
        return {name: np.nan for name in scores}
    return np.nan


def _nan_result(template: dict, parameters) -> dict:
    out = {k: v for k, v in template.items() if k != "estimator"}
    if "parameters" in out:
        out["parameters"] = parameters
    for name in ("test_scores", "train_scores"):
        if name in out:
            out[name] = _nan_like(out[name])
    for name in ("fit_time", "score_time"):
        if name in out:
            out[name] = np.nan
    out["fit_error"] = None
    return out


def _t_quantile(confidence: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(confidence, df))
