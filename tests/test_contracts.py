"""Contracts with upstream: every assumption distsk makes about scikit-learn, joblib and
distributed internals, asserted against the installed versions.

A release of one of them that breaks an assumption fails here, with a message naming the
distsk code that relies on it, instead of changing distsk's behaviour silently. The
private names themselves are imported in one place, ``distsk/_compat.py``; this file
checks what distsk does with them (and with internals reached through attributes).
"""

from __future__ import annotations

import concurrent.futures.process
import inspect
import threading
import time

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_config
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from distsk import DistributedSearchCV
from distsk._compat import (
    CALLBACKS_NEED,
    HAS_CALLBACKS,
    BaseSearchCV,
    _FuncWrapper,
    _MultimetricScorer,
    _PassthroughScorer,
    _routing_enabled,
    _safe_split,
    _Scorer,
    callback_transport,
)
from distsk._engines.base import InProcessRunner
from distsk._search.loop import CollectorBackend, SearchEngine
from distsk._units.fit_call import FitCall

X, y = make_classification(n_samples=60, n_features=4, random_state=0)


def relied_on(what: str, by: str) -> str:
    return f"Upstream contract broken: {what}. distsk relies on it in {by}."


class RecordingEngine(SearchEngine):
    """A SearchEngine (in this process) that keeps every call the collector received."""

    def __init__(self):
        super().__init__(InProcessRunner(), share=False)
        self.seen = []
        self.runs = 0

    def register(self, items):
        self.seen.extend(items)
        return super().register(items)

    def run(self):
        self.runs += 1
        super().run()


class Collecting:
    """A search whose (candidate, fold) calls go to a RecordingEngine, with the
    collector's config entered in fit and left in _run_search, as DistributedSearchCV
    does (the fits' own joblib loops then run with the caller's settings)."""

    def fit(self, X, y=None, **params):
        self.engine_ = RecordingEngine()
        self._config = parallel_config(backend=CollectorBackend(self.engine_))
        try:
            return super().fit(X, y, **params)
        finally:
            self._leave()

    def _leave(self):
        config = self.__dict__.pop("_config", None)
        if config is not None:
            config.__exit__(None, None, None)

    def _run_search(self, evaluate_candidates, callback_ctx=None):
        self._leave()
        kwargs = {} if callback_ctx is None else {"callback_ctx": callback_ctx}
        super()._run_search(evaluate_candidates, **kwargs)


class CollectedSearch(Collecting, GridSearchCV):
    pass


def collected(search):
    """The joblib items a plain sklearn search hands to distsk's collector."""
    search.fit(X, y)
    return search.engine_.seen


# ------------------------------------------------------------------ sklearn: the search
def test_search_parallel_is_built_before_run_search():
    search = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2,
                                 backend="sequential").fit(X, y)
    assert search.n_fits_performed_ == 4, relied_on(
        "BaseSearchCV.fit builds its joblib Parallel before calling _run_search, so a "
        "parallel_config entered in fit and left in _run_search reaches the search's "
        "fits and nothing else",
        "distsk/_face/search.py (DistributedSearchCV.fit / _run_search)",
    )


def test_refit_fits_best_estimator_read_through_the_attribute():
    # With dask data kept on the cluster, DistributedSearchCV.best_estimator_ is a
    # property whose getter hands sklearn a stand-in that refits on the cluster.
    class Recording(GridSearchCV):
        seen = []

        @property
        def best_estimator_(self):
            self.seen.append("get")
            return self.__dict__["best_estimator_"]

        @best_estimator_.setter
        def best_estimator_(self, value):
            self.seen.append("set")
            self.__dict__["best_estimator_"] = value

    search = Recording(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
    assert search.seen[:2] == ["set", "get"], relied_on(
        "BaseSearchCV.fit sets best_estimator_ to the unfitted clone and then calls "
        "self.best_estimator_.fit(X, y, ...) through the attribute",
        "distsk/_face/search.py (DistributedSearchCV.best_estimator_, _RefitOnCluster)",
    )
    assert hasattr(search.best_estimator_, "coef_")


class _FitUnderLoky(BaseSearchCV):
    """A BaseSearchCV whose fit enters its own joblib config, as an sklearn release
    building the search's Parallel under different settings would."""

    def fit(self, X, y=None, **params):
        with parallel_config(backend="loky"):
            return super().fit(X, y, **params)


class _BypassedSearch(DistributedSearchCV, _FitUnderLoky):
    pass


def test_a_search_whose_fits_bypass_the_collector_raises():
    search = _BypassedSearch(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, n_jobs=2,
                             backend="sequential")
    # The outer config contains what the bypass leaves behind (the collector's config
    # restored by the inner config's exit), so later tests run on plain joblib.
    with parallel_config(backend="sequential"):
        with pytest.raises(RuntimeError, match=r"4 \(candidate, fold\) fits without "
                           r"distsk's collector.*'sequential' engine"):
            search.fit(X, y)
    from joblib.parallel import get_active_backend

    assert not isinstance(get_active_backend()[0], CollectorBackend)


@pytest.mark.skipif(not HAS_CALLBACKS, reason=f"needs {CALLBACKS_NEED}")
def test_run_search_takes_callback_ctx():
    assert "callback_ctx" in inspect.signature(BaseSearchCV._run_search).parameters, relied_on(
        "BaseSearchCV._run_search takes a callback_ctx keyword (sklearn 1.9 callbacks)",
        "distsk/_face/search.py (DistributedSearchCV._run_search)",
    )


# Every keyword distsk reads, through distsk/_units/fit_call.py (FitCall), the one place
# that names them (used by _sharing, _checkpoint, _callbacks, _engines/_child, ...).
FIT_AND_SCORE_KEYWORDS = set(FitCall.KEYWORDS)
if HAS_CALLBACKS:  # sklearn >= 1.9
    FIT_AND_SCORE_KEYWORDS |= FitCall.CALLBACK_KEYWORDS


def test_fit_and_score_takes_the_keywords_distsk_reads():
    from sklearn.model_selection._validation import _fit_and_score

    params = inspect.signature(_fit_and_score).parameters
    assert list(params)[:3] == ["estimator", "X", "y"], relied_on(
        "_fit_and_score(estimator, X, y, ...) takes the estimator, X and y first",
        "distsk/_units/fit_call.py (FitCall.estimator, X, y)",
    )
    missing = FIT_AND_SCORE_KEYWORDS - set(params)
    assert not missing, relied_on(
        f"_fit_and_score no longer takes {sorted(missing)}",
        "distsk/_units/fit_call.py (FitCall.KEYWORDS)",
    )


def test_search_calls_are_batches_of_fit_and_score_triples():
    items = collected(CollectedSearch(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2))
    assert len(items) == 4, relied_on(
        "joblib hands a backend's submit() a batch whose .items lists every call",
        "distsk/_search/loop.py (CollectorBackend.submit reads func.items)",
    )
    for item in items:
        assert isinstance(item, tuple) and len(item) == 3, relied_on(
            "BatchedCalls.items are (func, args, kwargs) triples",
            "distsk/_search/loop.py, distsk/_units/sharing.py, distsk/_units/remote.py (pack)",
        )
        func, args, kwargs = item
        assert callable(func) and args[1] is X and args[2] is y, relied_on(
            "a search's call is _fit_and_score(estimator_clone, X, y, **kwargs)",
            "distsk/_units/sharing.py (_split_train, _candidate)",
        )
        assert isinstance(args[0], LogisticRegression)
        assert type(func) is _FuncWrapper and hasattr(func, "config"), relied_on(
            "sklearn's Parallel wraps each call in _FuncWrapper(func) carrying the caller's "
            "config", "distsk/_units/fit_call.py (FitCall.calling)")
        if hasattr(_FuncWrapper, "with_config_and_warning_filters"):  # sklearn >= 1.7
            assert hasattr(func, "warning_filters"), relied_on(
                "sklearn's _FuncWrapper carries the caller's warning filters too, settable "
                "through with_config_and_warning_filters",
                "distsk/_compat.py (with_callers_settings), distsk/_units/fit_call.py")
        else:
            assert hasattr(_FuncWrapper, "with_config"), relied_on(
                "sklearn < 1.7's _FuncWrapper takes the config through with_config",
                "distsk/_compat.py (with_callers_settings)")
        assert FIT_AND_SCORE_KEYWORDS <= set(kwargs), relied_on(
            f"the search passes {sorted(FIT_AND_SCORE_KEYWORDS - set(kwargs))} by keyword",
            "distsk/_units/sharing.py, distsk/_engines/child.py",
        )
        assert kwargs["parameters"] in ({"C": 0.1}, {"C": 1.0}), relied_on(
            "parameters= is the candidate's parameter dict",
            "distsk/_units/sharing.py (_candidate, _prefix_key, _ensemble_key)")
        assert kwargs["split_progress"][1] == 2, relied_on(
            "split_progress=(fold index, number of folds)",
            "distsk/_units/sharing.py (plan_units groups items by fold)")


class _Failing(LogisticRegression):
    def fit(self, X, y, **params):
        raise ValueError("this fit fails")


@pytest.mark.parametrize("scoring", [None, ["accuracy", "f1"]], ids=["single", "multi"])
@pytest.mark.parametrize("return_train_score", [False, True])
def test_failure_result_of_fit_and_score_is_what_distsk_makes_for_a_killed_fit(
    scoring, return_train_score
):
    """A fit that kills its process ends as the result sklearn gives a failing fit."""
    import warnings

    from sklearn.metrics import check_scoring
    from sklearn.model_selection._validation import _fit_and_score

    from distsk._engines.child import _killed_result

    scorer = check_scoring(_Failing(), scoring=scoring)
    kwargs = dict(
        scorer=scorer, train=np.arange(30), test=np.arange(30, 60), verbose=0,
        parameters={"C": 1.0}, fit_params={}, score_params={}, error_score=np.nan,
        return_train_score=return_train_score, return_n_test_samples=True,
        return_times=True, return_parameters=False, split_progress=(0, 2),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = _fit_and_score(_Failing(), X, y, **kwargs)
    made = _killed_result((_fit_and_score, (_Failing(), X, y), kwargs), "killed")
    assert set(made) == set(real), relied_on(
        f"_fit_and_score's failure result has keys {sorted(real)}",
        "distsk/_engines/child.py (_killed_result)",
    )
    assert real["fit_error"] is not None and isinstance(real["fit_error"], str)
    for key in ("test_scores", "train_scores"):
        if key in real:
            assert type(made[key]) is type(real[key]), relied_on(
                f"{key} of a failed fit is a {type(real[key]).__name__}",
                "distsk/_engines/child.py (_killed_result)")
            if isinstance(real[key], dict):
                assert set(made[key]) == set(real[key])
    assert made["n_test_samples"] == real["n_test_samples"]


def test_fit_and_score_returns_the_estimator_when_asked():
    from sklearn.metrics import check_scoring
    from sklearn.model_selection._validation import _fit_and_score

    result = _fit_and_score(
        LogisticRegression(), X, y, scorer=check_scoring(LogisticRegression()), train=np.arange(40), test=np.arange(40, 60),
        verbose=0, parameters={"C": 0.5}, fit_params={}, score_params={},
        return_estimator=True)
    model = result["estimator"]
    assert isinstance(model, LogisticRegression) and model.C == 0.5 and hasattr(
        model, "coef_"), relied_on(
        "_fit_and_score(..., return_estimator=True) returns the fitted estimator under "
        "'estimator'", "distsk/_face/halving.py (_fit_and_keep keeps a round's models)")


def test_halving_runs_one_parallel_call_per_round_with_the_resource_as_a_parameter():
    from sklearn.ensemble import RandomForestClassifier

    from distsk._compat import HalvingGridSearchCV

    class CollectedHalving(Collecting, HalvingGridSearchCV):
        pass

    search = CollectedHalving(
        RandomForestClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]}, cv=2,
        resource="n_estimators", max_resources=8, min_resources=2, factor=2)
    items = collected(search)
    by = "distsk/_face/halving.py (rounds on the engine; _GrowingEngine grows survivors)"
    assert search.engine_.runs == search.n_iterations_ > 1, relied_on(
        "BaseSuccessiveHalving._run_search calls evaluate_candidates (one Parallel "
        "call) once per round", by)
    sizes = sorted({kwargs["parameters"]["n_estimators"] for _, _, kwargs in items})
    assert sizes == list(search.n_resources_), relied_on(
        "with resource='n_estimators', each round's candidates carry the resource in "
        "their parameters", by)


def test_pipeline_fit_signature():
    from distsk._units.sharing import _SharedPrefixPipeline

    theirs = inspect.signature(Pipeline._fit).parameters
    ours = inspect.signature(_SharedPrefixPipeline._fit).parameters
    assert list(theirs) == [p for p in ours if p in theirs], relied_on(
        f"Pipeline._fit{inspect.signature(Pipeline._fit)} (the transformers' fit, "
        "returning the transformed X)",
        "distsk/_units/sharing.py (_SharedPrefixPipeline._fit, shared pipeline prefixes)",
    )
    extra = [p for name, p in ours.items() if name not in theirs]
    assert all(p.default is not inspect.Parameter.empty for p in extra), relied_on(
        "Pipeline.fit passes no argument Pipeline._fit does not take",
        "distsk/_units/sharing.py (_SharedPrefixPipeline._fit's extra parameters have defaults)")
    source = inspect.getsource(Pipeline.fit)
    assert "self._fit(" in source, relied_on(
        "Pipeline.fit fits its transformers through self._fit",
        "distsk/_units/sharing.py (_SharedPrefixPipeline)",
    )


def test_scorer_classes():
    from sklearn.metrics import check_scoring, get_scorer

    est = LogisticRegression()
    by = "distsk/_units/sharing.py (_shareable_call) and distsk/_engines/child.py"
    assert isinstance(check_scoring(est), _PassthroughScorer), relied_on(
        "scoring=None gives a _PassthroughScorer", by)
    assert isinstance(get_scorer("accuracy"), _Scorer), relied_on(
        "named scorers are _Scorer instances", by)
    multi = check_scoring(est, scoring=["accuracy", "f1"])
    assert isinstance(multi, _MultimetricScorer), relied_on(
        "a list of scorers gives a _MultimetricScorer", by)
    assert set(multi._scorers) == {"accuracy", "f1"}, relied_on(
        "_MultimetricScorer._scorers maps each name to its scorer", by)


def test_safe_split_takes_the_rows_of_a_fold():
    idx = np.array([3, 1, 4])
    Xs, ys = _safe_split(LogisticRegression(), X, y, idx)
    assert np.array_equal(Xs, X[idx]) and np.array_equal(ys, y[idx]), relied_on(
        "_safe_split(estimator, X, y, indices) returns the rows X[indices], y[indices]",
        "distsk/_units/sharing.py (_split_train)",
    )


def test_routing_enabled_follows_set_config():
    import sklearn

    assert _routing_enabled() is False
    with sklearn.config_context(enable_metadata_routing=True):
        assert _routing_enabled() is True, relied_on(
            "_routing_enabled() tells whether metadata routing is on",
            "distsk/_face/estimator.py (DistributedEstimator._fit, _call, score)",
        )


def test_search_estimator_has_guards_delegated_methods():
    from distsk._compat import _search_estimator_has

    unfitted = GridSearchCV(LogisticRegression(), {"C": [1.0]})
    by = "distsk/_face/search.py (DistributedSearchCV's delegated methods)"
    assert _search_estimator_has("predict_proba")(unfitted) is True, relied_on(
        "_search_estimator_has(name)(search) is True when the estimator has name", by)
    with pytest.raises(AttributeError):  # hasattr(search, "transform") is then False
        _search_estimator_has("transform")(unfitted)


# --------------------------------------------------------------- sklearn: callbacks
@pytest.mark.skipif(not HAS_CALLBACKS, reason=f"needs {CALLBACKS_NEED}")
def test_callback_transport_looks_consumers_up_with_get():
    seen = []

    class Consumers(dict):
        def get(self, address, default=None):
            return lambda message: seen.append((address, message))

    saved = callback_transport._message_consumers
    callback_transport._message_consumers = Consumers(saved)
    try:
        callback_transport.send(callback_transport.ListenerHandle("somewhere", b""), "hi")
    finally:
        callback_transport._message_consumers = saved
    assert seen == [("somewhere", "hi")], relied_on(
        "sklearn.callback._transport.send(ListenerHandle(address, authkey), message) "
        "finds the consumer with _message_consumers.get(address), a module-level dict",
        "distsk/_units/worker.py (_ForwardingConsumers, _Collecting), "
        "distsk/_engines/dask_events.py (EventRelay._deliver) and _local.py (_delivered)",
    )


@pytest.mark.skipif(not HAS_CALLBACKS, reason=f"needs {CALLBACKS_NEED}")
def test_callback_contexts_link_parent_and_children():
    from tests.counting import RecordingCallback

    search = CollectedSearch(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2)
    search.set_callbacks(RecordingCallback())
    items = collected(search)
    by = "distsk/_units/callbacks.py (portable, shows_progress, replay_callbacks)"
    for _, _, kwargs in items:
        ctx = kwargs["callback_ctx"]
        assert ctx is not None and ctx.parent is not None, relied_on(
            "each collected call carries its callback context, linked to its parent", by)
        assert isinstance(ctx.parent._children_map, dict), relied_on(
            "a callback context keeps its children in _children_map", by)
        assert isinstance(list(ctx._callbacks), list), relied_on(
            "a callback context lists its callbacks in _callbacks", by)
        assert kwargs["caller"] is search
        for hook in ("call_on_fit_task_begin", "call_on_fit_task_end"):
            params = inspect.signature(getattr(ctx, hook)).parameters
            assert {"estimator", "metadata"} <= set(params), relied_on(
                f"CallbackContext.{hook}(estimator=..., metadata=...)", by)
    assert search.__dict__.get("_skl_callbacks"), relied_on(
        "set_callbacks keeps the callbacks in _skl_callbacks",
        "distsk/_units/callbacks.py (portable: fits without callbacks travel light)")
    # During fit, the search holds the root of the context tree.
    assert "_callback_fit_ctx" not in search.__dict__  # removed after fit, as in 1.9
    from sklearn.callback import _callback_support

    assert "_callback_fit_ctx" in inspect.getsource(_callback_support), relied_on(
        "an estimator holds its root callback context in _callback_fit_ctx during fit",
        "distsk/_units/callbacks.py (portable: bare)")


# --------------------------------------------------------------- sklearn: estimators
def test_hist_gradient_boosting_keeps_one_predictor_list_per_iteration():
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)
    assert len(model._predictors) == model.n_iter_ == 5, relied_on(
        "HistGradientBoosting*._predictors holds one entry per iteration",
        "distsk/_units/sharing.py (_fit_from_big: smaller max_iter from a larger fit)",
    )
    assert isinstance(model.train_score_, np.ndarray)  # sliced [: k + 1] there
    assert isinstance(model.validation_score_, np.ndarray)


def test_forest_warm_start_seeds_new_trees_as_a_fresh_fit():
    import warnings

    from sklearn.ensemble import RandomForestClassifier

    fresh = RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)
    grown = RandomForestClassifier(n_estimators=4, random_state=0, warm_start=True)
    grown.estimators_ = [None, None]  # placeholders for trees 0 and 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown.fit(X, y)
    for theirs, ours in zip(fresh.estimators_[2:], grown.estimators_[2:]):
        assert theirs.random_state == ours.random_state and np.array_equal(
            theirs.tree_.threshold, ours.tree_.threshold), relied_on(
            "a warm-started forest draws one seed per existing tree before seeding its "
            "new trees, so trees start:stop equal those of a fresh fit",
            "distsk/_engines/base.py (fit_subforest: split-forest fits, split refits)")


def test_kmeans_predict_reads_n_threads():
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)
    assert "_n_threads" in model.__dict__, relied_on(
        "a fitted KMeans keeps _n_threads, which predict reads",
        "distsk/_engines/dask_ml.py (_transplant sets it on a dask-ml fit)",
    )


def test_poisson_predict_reads_base_loss():
    from sklearn.linear_model import PoissonRegressor

    model = PoissonRegressor().fit(X, np.abs(y))
    assert "_base_loss" in model.__dict__ and type(model._base_loss) is type(
        PoissonRegressor()._get_loss()), relied_on(
        "a fitted PoissonRegressor keeps _base_loss (its _get_loss()), which predict reads",
        "distsk/_engines/dask_ml.py (_transplant sets it on a dask-ml fit)",
    )


# ------------------------------------------------------------------------- joblib
def _fill(i):
    return {"i": i}


def test_collector_backend_is_a_complete_joblib_backend():
    # joblib < 1.5 requires apply_async, which the collector does not implement.
    CollectorBackend(RecordingEngine())


def test_stop_call_runs_before_parallel_returns():
    engine = RecordingEngine()
    with parallel_config(backend=CollectorBackend(engine)):
        out = Parallel(n_jobs=2)(delayed(_fill)(i) for i in range(5))
        assert out == [{"i": i} for i in range(5)], relied_on(
            "joblib calls the backend's stop_call() before Parallel.__call__ returns",
            "distsk/_search/loop.py (CollectorBackend.stop_call runs the collected calls)",
        )
        with Parallel(n_jobs=2) as parallel:  # sklearn's way: one Parallel, many calls
            first = parallel(delayed(_fill)(i) for i in range(3))
            assert first == [{"i": i} for i in range(3)], relied_on(
                "a managed Parallel (with Parallel(...) as p) calls stop_call at the end "
                "of each p(...) call", "distsk/_search/loop.py (CollectorBackend)")
            second = parallel(delayed(_fill)(i) for i in range(2))
            assert second == [{"i": 0}, {"i": 1}]
    assert len(engine.seen) == 10


def test_sequential_backend_takes_nesting_level():
    from distsk._compat import SequentialBackend

    assert SequentialBackend(nesting_level=1).nesting_level == 1, relied_on(
        "SequentialBackend(nesting_level=...)",
        "distsk/_search/loop.py (CollectorBackend.get_nested_backend)")


def test_loky_executor_internals():
    from distsk._compat import LokyBackend
    from distsk._engines.local import LokyRunner

    by = "distsk/_engines/local.py (LokyRunner)"
    kwargs = Parallel(n_jobs=1)._backend_kwargs
    assert {"max_nbytes", "mmap_mode", "temp_folder"} <= set(kwargs), relied_on(
        "Parallel._backend_kwargs holds the executor arguments of a default Parallel", by)
    env = LokyBackend()._prepare_worker_env(n_jobs=1)
    assert isinstance(env, dict) and "OMP_NUM_THREADS" in env, relied_on(
        "LokyBackend._prepare_worker_env(n_jobs) returns the workers' environment", by)
    runner = LokyRunner(1)
    try:
        executor = runner._executor
        assert executor._flags.broken is None, relied_on(
            "loky's executor has _flags.broken (None while the pool works)", by)
        manager = executor._temp_folder_manager
        assert callable(manager.set_current_context) and callable(
            manager._clean_temporary_resources), relied_on(
            "the memmapping executor has _temp_folder_manager.set_current_context and "
            "_clean_temporary_resources(context_id=, force=)", by)
        assert {"context_id", "force"} <= set(
            inspect.signature(manager._clean_temporary_resources).parameters), relied_on(
            "_clean_temporary_resources(context_id=, force=)", by)
        outcome = runner.submit("single", [(_fill, (7,), {})]).result(timeout=120)
        assert outcome[0] == [{"i": 7}], relied_on(
            "get_memmapping_executor(...).submit runs a unit in a loky worker", by)
    finally:
        runner.close()


def test_loky_broken_pool_is_the_standard_library_one():
    from joblib.externals.loky.process_executor import BrokenProcessPool

    assert issubclass(BrokenProcessPool, concurrent.futures.process.BrokenProcessPool), (
        relied_on("loky's BrokenProcessPool subclasses concurrent.futures'",
                  "distsk/_engines/local.py (LokyRunner.submit retries broken pools)"))


# -------------------------------------------------------------------- distributed
def test_scheduler_info_shape(client):
    from distsk._decide.profile import _accepts_n_workers, profile_compute

    info = (client.scheduler_info(n_workers=-1) if _accepts_n_workers(client)
            else client.scheduler_info())
    by = "distsk/_decide/profile.py (profile_compute)"
    if "total_threads" in info:
        assert {"n_workers", "total_threads", "total_memory"} <= set(info), relied_on(
            "scheduler_info() has n_workers, total_threads and total_memory", by)
    else:
        worker = next(iter(info["workers"].values()))
        assert {"nthreads", "memory_limit"} <= set(worker), relied_on(
            "scheduler_info()['workers'] entries have nthreads and memory_limit", by)
    profile = profile_compute(client)
    assert (profile.n_workers, profile.worker_threads) == (2, 2), relied_on(
        "the scheduler info describes the session cluster (2 workers x 1 thread)", by)
    assert profile.worker_memory_bytes > 0
    assert isinstance(client.scheduler.address, str)


def test_future_cancelled_error_takes_a_reason():
    from distributed import KilledWorker  # noqa: F401 (imported by _dask.py)
    from distributed.client import FutureCancelledError

    err = FutureCancelledError("key", reason="lost dependencies")
    assert isinstance(err, Exception) and "lost dependencies" in str(err), relied_on(
        "distributed.client.FutureCancelledError(key, reason=...)",
        "distsk/_engines/dask.py (DaskRunner: tasks cancelled for lost inputs)")


def test_scheduler_keeps_event_topics_in_a_dict_and_answers_events(client):
    from distsk._units.remote import drop_topics

    by = "distsk/_units/remote.py (drop_topics) and distsk/_units/worker.py (_run_fits_kept)"
    client.log_event("distsk-contract-fits-a", b"kept")
    time.sleep(0.2)
    assert client.run_on_scheduler(
        lambda dask_scheduler: [e for _, e in dask_scheduler.get_events("distsk-contract-fits-a")]
    ) == [b"kept"], relied_on("events logged to a topic come back from Scheduler.get_events "
                              "(the 'events' handler a worker calls)", by)
    topics = client.run_on_scheduler(
        lambda dask_scheduler: sorted(n for n in dask_scheduler._broker._topics
                                      if n.startswith("distsk-contract")))
    assert topics == ["distsk-contract-fits-a"], relied_on(
        "Scheduler._broker._topics is a dict of every topic logged to", by)
    client.run_on_scheduler(drop_topics, "distsk-contract-")
    assert client.run_on_scheduler(
        lambda dask_scheduler: [n for n in dask_scheduler._broker._topics
                                if n.startswith("distsk-contract")]) == []


def test_worker_exposes_its_status_and_task_states(client):
    from distributed.core import Status

    def probe(dask_worker):
        return (dask_worker.status == Status.running,
                isinstance(dask_worker.state.tasks, dict))

    assert all(all(v) for v in client.run(probe).values()), relied_on(
        "Worker.status (distributed.core.Status) and Worker.state.tasks[key].state",
        "distsk/_units/worker.py (_wanted: a batch stops once its worker leaves)")


# ------------------------------------------------------------- one place for private names
def test_private_names_are_imported_only_in_compat():
    """Every private name from another library is imported through distsk/_compat.py,
    which says why and since which version (function-level imports included)."""
    import ast
    from pathlib import Path

    import distsk

    package = Path(distsk.__file__).parent

    def private(module):
        parts = module.split(".")
        return parts[0] != "distsk" and any(
            p.startswith("_") and not p.startswith("__") for p in parts)

    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [a.name for a in node.names if a.name.startswith("_")]
                if node.module.split(".")[0] != "distsk" and (private(node.module) or names):
                    found.append(f"{path.relative_to(package)}:{node.lineno} "
                                 f"from {node.module} import {', '.join(names) or '...'}")
            elif isinstance(node, ast.Import):
                found.extend(f"{path.relative_to(package)}:{node.lineno} import {a.name}"
                             for a in node.names
                             if private(a.name))
    assert found == [], "private imports outside distsk/_compat.py:\n" + "\n".join(found)


def test_dask_compute_returns_mixed_collections_out_of_order():
    """dask.compute(array, delayed, array) returns (array, array, delayed): results of
    collections of both graph kinds come back out of order (dask 2025.7.0 and 2026.8.0;
    with optimize_graph=False the order is right). distsk/_cluster/data.py's compute_all
    and compute_futures pair each result with its input by position or key and never
    rely on the order (#21: a search fitted on the groups as labels). When this fails,
    dask returns them in order: the workaround costs one small task per input and may
    stay, but say so in _cluster_data.compute_all's docstring."""
    import dask
    import dask.array as da

    got = dask.compute(da.from_array(np.array([1, 1]), chunks=1),
                       dask.delayed(np.array([2, 2])),
                       da.from_array(np.array([3, 3]), chunks=1))
    assert [int(v[0]) for v in got] == [1, 3, 2], (
        f"dask {dask.__version__} returned mixed collections in order: revisit "
        "_cluster_data.compute_all")
    in_order = dask.compute(da.from_array(np.array([1, 1]), chunks=1),
                            dask.delayed(np.array([2, 2])), optimize_graph=False)
    assert [int(v[0]) for v in in_order] == [1, 2]


def test_client_compute_keys_futures_by_the_delayed_parts_keys(client):
    """_cluster_data.compute_futures pairs futures with dask.delayed parts by key: the
    future of a Delayed carries the Delayed's key (not so for arrays, whose future is a
    finalize task); the list client.compute returns is in another order when kinds mix."""
    import dask
    import dask.array as da

    parts = list(da.from_array(np.arange(6), chunks=2).to_delayed()) + [
        dask.delayed(np.ones(2))]
    futures = client.compute(parts)
    try:
        assert {f.key for f in futures} == {p.key for p in parts}
    finally:
        for f in futures:
            f.release()
    mixed = client.compute([da.from_array(np.array([1, 1]), chunks=1),
                            dask.delayed(np.array([2, 2])),
                            da.from_array(np.array([3, 3]), chunks=1)])
    assert [int(f.result()[0]) for f in mixed] == [1, 3, 2]


def test_dask_persist_of_arrays_and_frames_together_can_swap_their_data(client):
    """Worse than the order: client.persist([array, series, array]) returns a Series that
    computes to the last array's values (dask 2025.7.0 and 2026.8.0), and dask.persist
    alike. distsk persists one collection per call (_engines/_dask_ml._persisted).
    When this fails, dask persists mixed collections faithfully."""
    import dask.array as da
    import dask.dataframe as dd
    import pandas as pd

    a = da.from_array(np.array([1.0, 1.0]), chunks=1)
    s = dd.from_pandas(pd.Series([4.0, 4.0]), npartitions=1)
    c = da.from_array(np.array([3.0, 3.0]), chunks=1)
    got = client.persist([a, s, c])
    with client.as_current():
        values = [float(np.asarray(x.compute()).ravel()[0]) for x in got]
    assert values == [1.0, 3.0, 3.0], f"persist of mixed collections gave {values}"


def test_the_current_client_context_variable_is_what_dask_computes_on(client):
    """_compat.client_as_current sets distributed.client._current_client alone (not
    as_current's process-wide dask.config.set): dask's get_scheduler must find the
    client through it when no scheduler is configured."""
    import dask
    import dask.base

    from distsk._compat import client_as_current

    assert dask.config.get("scheduler", None) is None
    assert getattr(dask.base.get_scheduler(), "__self__", None) is not client
    with client_as_current(client):
        assert getattr(dask.base.get_scheduler(), "__self__", None) is client
        assert dask.config.get("scheduler", None) is None
    assert getattr(dask.base.get_scheduler(), "__self__", None) is not client


def test_as_current_blocks_overlapping_in_two_threads_leave_the_scheduler_set(client):
    """Why distsk does not use Client.as_current: blocks of two threads that overlap
    without nesting leave scheduler='dask.distributed' set for the process (the next
    dask computation without a client raises). When this fails, as_current is safe
    across threads and _compat.client_as_current may go."""
    import dask

    def overlapping(current):
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

        def a():
            with current(client):
                a_in.set()
                b_in.wait(10)
            a_out.set()

        def b():
            a_in.wait(10)
            with current(client):
                b_in.set()
                a_out.wait(10)

        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        left = dask.config.get("scheduler", None)
        dask.config.config.pop("scheduler", None)
        return left

    from distsk._compat import client_as_current

    assert overlapping(lambda c: c.as_current()) == "dask.distributed"
    assert overlapping(client_as_current) is None
