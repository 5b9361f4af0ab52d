"""Benchmark scenarios: one function each, registered by name in ``SCENARIOS``.

A scenario takes the run's :class:`~harness.Context` (shared client, repeat count,
sizes) and returns its records, normally ``measure(ctx, name, contenders, ...)``. To add
one write a function and decorate it with ``@scenario("its-name")``; ``run.py
--scenarios its-name`` then runs it. Scenarios run in the order they are registered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from harness import Contender, Context, Timed, measure

__all__ = ["SCENARIOS", "scenario"]

SCENARIOS: dict[str, Callable[[Context], list[dict]]] = {}


def scenario(name: str):
    def register(func):
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} is registered twice")
        SCENARIOS[name] = func
        return func

    return register


# ---------------------------------------------------------------------------- checks
def _as_numpy(a):
    return np.asarray(a.compute() if hasattr(a, "compute") else a)


def _prediction_check(reference: str, X, *, method: str = "predict"):
    """Equal when ``method(X)`` is identical to the reference contender's."""

    def check(name, result, results):
        if reference not in results:
            return None, f"not compared: {reference!r} failed"
        expected = _as_numpy(getattr(results[reference], method)(X))
        got = _as_numpy(getattr(result, method)(X))
        if np.array_equal(got, expected):
            return True, ""
        if method == "predict":
            agree = float(np.mean(got == expected))
            return False, f"predictions agree with {reference!r} on {agree:.2%} of rows"
        return False, f"{method} differs from {reference!r} (max abs diff " \
                      f"{float(np.max(np.abs(got - expected))):.3g})"

    return check


def _score_key(params: dict) -> str:
    return repr(sorted(params.items()))


def _scores(search) -> dict[str, float]:
    res = search.cv_results_
    return {_score_key(p): float(s) for p, s in zip(res["params"], res["mean_test_score"])}


def _search_check(references=("sklearn n_jobs=1", "sklearn loky")):
    """Equal when every candidate's mean_test_score matches plain sklearn's (to 1e-12)."""

    def check(name, result, results):
        ref = next((r for r in references if r in results), None)
        if ref is None:
            return None, "not compared: no sklearn search succeeded"
        expected, got = _scores(results[ref]), _scores(result)
        if expected.keys() != got.keys():
            return False, f"candidates differ from {ref!r}'s"
        diff = max(abs(got[k] - expected[k]) for k in expected)
        if diff <= 1e-12 or all(np.isnan(got[k]) and np.isnan(expected[k]) for k in expected):
            return True, ""
        return False, f"mean_test_score differs from {ref!r}'s by up to {diff:.3g}"

    return check


# ---------------------------------------------------------------------------- scenarios
@scenario("lazy-small-lr")
def lazy_small_lr(ctx: Context) -> list[dict]:
    """A dask array small enough to gather: distsk gathers, dask-ml fits blockwise."""
    import dask.array as da
    from distributed import wait
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from distsk import DistributedEstimator

    s = ctx.sizes
    X, y = make_classification(s.lr_rows, s.lr_cols, random_state=0)
    # The data lives on the workers, as if loaded there; every contender but the
    # baseline starts from these chunks.
    Xd = da.from_array(X, chunks=(s.lr_chunk_rows, -1)).persist()
    yd = da.from_array(y, chunks=s.lr_chunk_rows).persist()
    wait([Xd, yd])
    where = f"{Xd.npartitions} chunks persisted on the workers"

    def dask_ml_direct():
        from dask_ml.linear_model import LogisticRegression as DaskMLLogisticRegression

        return DaskMLLogisticRegression().fit(Xd, yd)

    contenders = [
        Contender("distsk auto",
                  lambda: DistributedEstimator(LogisticRegression()).fit(Xd, yd),
                  n_fits=1, notes=where),
        Contender("dask-ml direct", dask_ml_direct, n_fits=1,
                  notes=f"{where}; dask-ml default solver (admm)"),
        Contender("sklearn numpy", lambda: LogisticRegression().fit(X, y), n_fits=1),
    ]
    return measure(ctx, "lazy-small-lr", contenders, baseline="sklearn numpy",
                   check=_prediction_check("sklearn numpy", X))


@scenario("forest-on-cluster")
def forest_on_cluster(ctx: Context) -> list[dict]:
    """One big random forest: local threads vs joblib's Dask backend vs distsk sub-forests."""
    from joblib import parallel_config
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from distsk import DistributedEstimator

    s = ctx.sizes
    X, y = make_classification(s.forest_rows, s.forest_cols, random_state=0)

    def forest():
        return RandomForestClassifier(n_estimators=s.forest_trees, random_state=0, n_jobs=-1)

    def joblib_dask():
        with parallel_config(backend="dask", client=ctx.client):
            return forest().fit(X, y)

    contenders = [
        Contender("loky", lambda: forest().fit(X, y), n_fits=1,
                  notes="plain sklearn, n_jobs=-1 (joblib's default: threads for forests)"),
        Contender("joblib dask backend", joblib_dask, n_fits=1),
        Contender("distsk cluster",
                  lambda: DistributedEstimator(forest(), backend="dask",
                                               client=ctx.client).fit(X, y),
                  n_fits=1),
        Contender("distsk auto", lambda: DistributedEstimator(forest()).fit(X, y), n_fits=1,
                  notes="no backend forced (the cluster is the default client)"),
    ]
    check = _prediction_check("loky", X[: min(len(X), 2_000)], method="predict_proba")
    return measure(ctx, "forest-on-cluster", contenders, baseline="loky", check=check)


def _search_contenders(ctx: Context, estimator, grid, X, y, *, distsk_local: str,
                       cv: int | None = None, joblib_dask: bool = True,
                       n_fits: dict | None = None, notes: dict | None = None):
    """The ways of running one grid search, shared by the grid scenarios.

    ``n_fits`` and ``notes`` override or extend, by contender name, the default fit
    counts (candidates x folds; ``n_fits_performed_`` for distsk) and notes.
    """
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV, ParameterGrid

    from distsk import DistributedSearchCV

    cv = ctx.sizes.cv if cv is None else cv
    fits = len(ParameterGrid(grid)) * cv

    def sklearn(n_jobs):
        return GridSearchCV(estimator, grid, cv=cv, n_jobs=n_jobs).fit(X, y)

    def sklearn_joblib_dask():
        with parallel_config(backend="dask", client=ctx.client):
            return sklearn(-1)

    def dask_ml():
        from dask_ml.model_selection import GridSearchCV as DaskMLGridSearchCV

        # iid=False: sklearn's unweighted mean over folds (dask-ml's default weights
        # folds by size, a different mean_test_score when folds differ in size).
        return DaskMLGridSearchCV(estimator, grid, cv=cv, iid=False,
                                  scheduler=ctx.client).fit(X, y)

    def distsk(backend, client=None):
        return DistributedSearchCV(estimator, grid, cv=cv, backend=backend,
                                   client=client).fit(X, y)

    def performed(search):
        return search.n_fits_performed_

    contenders = [
        Contender("sklearn n_jobs=1", lambda: sklearn(1), n_fits=fits),
        Contender("sklearn loky", lambda: sklearn(-1), n_fits=fits),
        Contender("sklearn joblib-dask", sklearn_joblib_dask, n_fits=fits),
        Contender("dask-ml", dask_ml, n_fits=fits, notes="iid=False"),
        Contender("distsk local", lambda: distsk(distsk_local), n_fits=performed,
                  notes=f"backend={distsk_local!r}"),
        Contender("distsk cluster", lambda: distsk("dask", ctx.client), n_fits=performed,
                  notes="backend='dask'"),
        Contender("distsk auto", lambda: distsk("auto"), n_fits=performed,
                  notes="no backend forced (the cluster is the default client)"),
    ]
    if not joblib_dask:
        contenders = [c for c in contenders if c.name != "sklearn joblib-dask"]
    n_fits, notes = n_fits or {}, notes or {}
    return [
        replace(c, n_fits=n_fits.get(c.name, c.n_fits),
                notes="; ".join(n for n in (c.notes, notes.get(c.name, "")) if n))
        for c in contenders
    ]


@scenario("rf-grid")
def rf_grid(ctx: Context) -> list[dict]:
    """A random-forest grid (16 candidates x 5 folds): where a search's fits should run."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    s = ctx.sizes
    X, y = make_classification(n_samples=s.grid_rows, n_features=s.grid_cols,
                               n_informative=2, n_redundant=0, random_state=0)
    contenders = _search_contenders(ctx, RandomForestClassifier(random_state=0), s.rf_grid,
                                    X, y, distsk_local="loky")
    return measure(ctx, "rf-grid", contenders, baseline="sklearn loky", check=_search_check())


@scenario("tiny-grid")
def tiny_grid(ctx: Context) -> list[dict]:
    """Fits of a few ms each: parallel workers cost more than they save."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    s = ctx.sizes
    X, y = make_classification(s.grid_rows, s.grid_cols, random_state=0)
    grid = {"C": [float(c) for c in np.logspace(-3, 3, s.n_C)]}
    contenders = _search_contenders(ctx, LogisticRegression(), grid, X, y, distsk_local="loky")
    return measure(ctx, "tiny-grid", contenders, baseline="sklearn n_jobs=1",
                   check=_search_check())


@scenario("pipeline-grid")
def pipeline_grid(ctx: Context) -> list[dict]:
    """Scaler -> Nystroem -> LogisticRegression, only the LR's C and Nystroem's gamma vary.

    The Nystroem map dominates each fit; candidates that differ only in C share it.
    """
    from sklearn.datasets import make_classification
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import ParameterGrid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s = ctx.sizes
    X, y = make_classification(s.pipe_rows, s.pipe_cols, random_state=0)
    pipe = make_pipeline(
        StandardScaler(),
        Nystroem(n_components=s.pipe_components, random_state=0),  # seeded: shareable
        LogisticRegression(max_iter=1000),
    )
    grid = {
        "nystroem__gamma": [0.005, 0.02],
        "logisticregression__C": [0.01, 0.1, 1.0, 10.0, 100.0],
    }
    cv = s.pipe_cv
    finals = len(ParameterGrid(grid)) * cv  # one final-step fit per candidate x fold
    prefixes = len(grid["nystroem__gamma"]) * cv  # distinct (prefix params, fold)
    # n_fits counts full fits, as distsk's n_fits_performed_ does: a whole pipeline fit
    # (unshared) or one shared prefix fit counts once; final-step fits on a shared
    # prefix's output are cheap and not counted.
    contenders = _search_contenders(
        ctx, pipe, grid, X, y, distsk_local="loky", cv=cv, joblib_dask=False,
        n_fits={"sklearn n_jobs=1": finals, "sklearn loky": finals, "dask-ml": prefixes},
        notes={
            "sklearn n_jobs=1": f"{finals} full pipeline fits (no sharing)",
            "sklearn loky": f"{finals} full pipeline fits (no sharing)",
            "dask-ml": f"fits computed, not counted: {prefixes} prefix fits "
                       f"({len(grid['nystroem__gamma'])} gammas x {cv} folds) + {finals} "
                       "final-step fits",
            "distsk local": f"n_fits_performed_: shared prefix fits (+ {finals} final-step fits)",
            "distsk cluster": f"n_fits_performed_: shared prefix fits (+ {finals} final-step fits)",
        },
    )
    return measure(ctx, "pipeline-grid", contenders, baseline="sklearn loky",
                   check=_search_check())


@scenario("forest-size-grid")
def forest_size_grid(ctx: Context) -> list[dict]:
    """rf-grid with n_estimators 100/200/300: distsk fits the largest forest once."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    s = ctx.sizes
    X, y = make_classification(n_samples=s.grid_rows, n_features=s.grid_cols,
                               n_informative=2, n_redundant=0, random_state=0)
    grid = {**s.rf_grid, "n_estimators": list(s.size_trees)}
    contenders = _search_contenders(
        ctx, RandomForestClassifier(random_state=0), grid, X, y, distsk_local="loky",
        joblib_dask=False,
        notes={name: "fits = n_fits_performed_ (one fit of the largest forest per "
               "other params x fold)" for name in ("distsk local", "distsk cluster")},
    )
    return measure(ctx, "forest-size-grid", contenders, baseline="sklearn loky",
                   check=_search_check())


@contextlib.contextmanager
def _timing_checkpoint():
    """Seconds spent inside distsk's checkpoint code (opening, keys, reads, writes).

    Wall-time ratios on a shared 2-core machine swing by more than the few per cent the
    checkpoint costs; this measures the cost itself. ``inside[0]`` holds the total.
    """
    from distsk._search import checkpoint as _checkpoint

    inside = [0.0]
    patched = [(_checkpoint.Checkpoint, n) for n in ("__init__", "get_many", "put", "close")]
    patched += [(_checkpoint.ItemKeys, "key")]
    originals = [(cls, name, getattr(cls, name)) for cls, name in patched]

    def timed(func):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - t0
        return wrapper

    for cls, name, func in originals:
        setattr(cls, name, timed(func))
    try:
        yield inside
    finally:
        for cls, name, func in originals:
            setattr(cls, name, func)


def rf_grid_search(rows, cols, grid, cv, checkpoint=None):
    """The rf-grid's data and a DistributedSearchCV over it (loky), as ``resume`` runs it."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from distsk import DistributedSearchCV

    X, y = make_classification(n_samples=rows, n_features=cols, n_informative=2,
                               n_redundant=0, random_state=0)
    search = DistributedSearchCV(RandomForestClassifier(random_state=0), grid, cv=cv,
                                 backend="loky", checkpoint=checkpoint)
    return search, X, y


@scenario("resume")
def resume(ctx: Context) -> list[dict]:
    """rf-grid with a checkpoint: its cost, and a search killed half-way then resumed.

    ``killed + resumed`` runs the search in a child process, SIGKILLs the child's whole
    process group (it and its loky workers, as when a machine or kernel dies) when half
    the uninterrupted run's time has passed, then fits again here with the same
    checkpoint.
    Its time is the child's search time until the kill plus the resumed fit's (the
    child's interpreter start-up is left out: a restart costs that whatever the tool).
    """
    import json
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from sklearn.model_selection import GridSearchCV, ParameterGrid

    s = ctx.sizes
    grid, cv = s.rf_grid, s.cv
    n_results = len(ParameterGrid(grid)) * cv
    tmp = Path(tempfile.mkdtemp(prefix="distsk-bench-resume-"))
    runs = iter(range(1_000_000))

    def stored(path):
        try:
            with sqlite3.connect(path) as db:
                return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    plain_times = []

    def plain():
        search, X, y = rf_grid_search(s.grid_rows, s.grid_cols, grid, cv)
        t0 = time.perf_counter()
        search.fit(X, y)
        plain_times.append(time.perf_counter() - t0)
        return search

    spent = []  # (seconds inside the checkpoint's own code, seconds of the whole fit)

    def checkpointed():
        ckpt = tmp / f"fresh-{next(runs)}.sqlite"
        search, X, y = rf_grid_search(s.grid_rows, s.grid_cols, grid, cv, checkpoint=str(ckpt))
        with _timing_checkpoint() as inside:
            t0 = time.perf_counter()
            search.fit(X, y)
            spent.append((inside[0], time.perf_counter() - t0))
        return search

    kills = []

    def killed_and_resumed():
        n = next(runs)
        ckpt, started = tmp / f"killed-{n}.sqlite", tmp / f"started-{n}"
        spec = tmp / f"spec-{n}.json"
        spec.write_text(json.dumps({"rows": s.grid_rows, "cols": s.grid_cols, "grid": grid,
                                    "cv": cv, "checkpoint": str(ckpt),
                                    "started": str(started)}))
        here = Path(__file__).resolve().parent
        child = subprocess.Popen([sys.executable, str(here / "_resume_child.py"), str(spec)],
                                 cwd=here, start_new_session=True)
        try:
            # Half way in time (half the results would be the cheap half: the grid's
            # first candidates are its shallow forests).
            half = 0.5 * plain_times[-1]
            deadline = time.time() + 600
            while time.time() < deadline and child.poll() is None and (
                not started.exists() or not started.read_text()
                or time.time() - float(started.read_text()) < half
            ):
                time.sleep(0.01)
            if child.poll() is not None:
                raise RuntimeError("the search ended before it could be killed")
            os.killpg(child.pid, signal.SIGKILL)
            killed_at = time.time()
        finally:
            child.wait(timeout=60)
        before = float(started.read_text())
        kept = stored(ckpt)
        t0 = time.perf_counter()
        search, X, y = rf_grid_search(s.grid_rows, s.grid_cols, grid, cv, checkpoint=str(ckpt))
        search.fit(X, y)
        resumed = time.perf_counter() - t0
        kills.append((kept, search.n_fits_resumed_, killed_at - before, resumed))
        return Timed(search, (killed_at - before) + resumed)

    def sklearn_loky():
        search, X, y = rf_grid_search(s.grid_rows, s.grid_cols, grid, cv)
        return GridSearchCV(search.estimator, grid, cv=cv, n_jobs=-1).fit(X, y)

    def auto():
        search, X, y = rf_grid_search(s.grid_rows, s.grid_cols, grid, cv)
        return search.set_params(backend="auto").fit(X, y)

    contenders = [
        Contender("sklearn loky", sklearn_loky, n_fits=n_results),
        Contender("distsk", plain, n_fits=lambda r: r.n_fits_performed_,
                  notes="backend='loky', no checkpoint"),
        Contender("distsk auto", auto, n_fits=lambda r: r.n_fits_performed_,
                  notes="no backend forced, no checkpoint"),
        Contender("distsk checkpoint", checkpointed, n_fits=lambda r: r.n_fits_performed_,
                  notes="a fresh checkpoint file each run: the checkpoint's overhead"),
        Contender("distsk killed + resumed", killed_and_resumed,
                  n_fits=lambda r: r.n_fits_performed_,
                  notes="fits = run on resume"),
    ]
    records = measure(ctx, "resume", contenders, baseline="distsk", check=_search_check(
        references=("sklearn loky",)))
    for r in records:
        if r["contender"] == "distsk checkpoint" and spent:
            inside, total = spent[-1]
            r["notes"] += (f"; time inside the checkpoint's code (keys, fingerprints, "
                           f"SQLite): {1000 * inside:.0f} ms = {inside / total:.1%} of the fit")
        if r["contender"] == "distsk killed + resumed" and kills:
            kept, resumed, before, after = kills[-1]
            r["notes"] += (f"; killed with {kept} of {n_results} results stored "
                           f"({before:.2f} s in), {resumed} resumed, resume took {after:.2f} s")
    return records


# ----------------------------------------------------------------- successive halving
def _halving_check(reference="sklearn loky"):
    """Equal when every round's candidates, resources and mean_test_score are sklearn's."""

    def check(name, result, results):
        if reference not in results:
            return None, f"not compared: {reference!r} failed"
        ref, got = results[reference].cv_results_, result.cv_results_
        if list(got["params"]) != list(ref["params"]):
            return False, f"rounds' candidates differ from {reference!r}'s"
        for key in ("iter", "n_resources", "mean_test_score"):
            if not np.array_equal(got[key], ref[key], equal_nan=True):
                return False, f"{key} differs from {reference!r}'s"
        return True, ""

    return check


def _halving_contenders(ctx: Context, sklearn_cls, distsk_cls, estimator, space, X, y,
                        **kw):
    """sklearn's halving search on loky and under joblib's Dask backend, and distsk's
    on loky and on the cluster; the search of each contender's last run is kept in
    ``last`` (for fit and tree counts)."""
    from joblib import parallel_config

    last: dict = {}

    def keep(name, search):
        last[name] = search
        return search

    def sklearn_loky():
        return keep("sklearn loky", sklearn_cls(estimator, space, n_jobs=-1, **kw).fit(X, y))

    def sklearn_joblib_dask():
        with parallel_config(backend="dask", client=ctx.client):
            search = sklearn_cls(estimator, space, n_jobs=-1, **kw).fit(X, y)
        return keep("sklearn joblib-dask", search)

    def distsk(name, backend, client=None):
        return lambda: keep(name, distsk_cls(estimator, space, backend=backend,
                                             client=client, **kw).fit(X, y))

    def sklearn_fits(search):
        return sum(search.n_candidates_) * search.n_splits_

    contenders = [
        Contender("sklearn loky", sklearn_loky, n_fits=sklearn_fits),
        Contender("sklearn joblib-dask", sklearn_joblib_dask, n_fits=sklearn_fits),
        Contender("distsk local", distsk("distsk local", "loky"),
                  n_fits=lambda r: r.n_fits_performed_, notes="backend='loky'"),
        Contender("distsk cluster", distsk("distsk cluster", "dask", ctx.client),
                  n_fits=lambda r: r.n_fits_performed_, notes="backend='dask'"),
        Contender("distsk auto", distsk("distsk auto", "auto"),
                  n_fits=lambda r: r.n_fits_performed_,
                  notes="no backend forced (the cluster is the default client)"),
    ]
    return contenders, last


@scenario("halving-random")
def halving_random(ctx: Context) -> list[dict]:
    """HalvingRandomSearchCV over HistGradientBoosting: 64 candidates, rounds on rows."""
    from scipy.stats import loguniform, randint
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    from distsk import DistributedHalvingRandomSearchCV
    from distsk._compat import HalvingRandomSearchCV

    rows, n_candidates = (600, 16) if ctx.smoke else (6_000, 64)
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=8,
                               random_state=0)
    space = {"learning_rate": loguniform(0.01, 1.0), "max_leaf_nodes": randint(4, 64),
             "min_samples_leaf": randint(5, 50), "l2_regularization": loguniform(1e-4, 1)}
    contenders, last = _halving_contenders(
        ctx, HalvingRandomSearchCV, DistributedHalvingRandomSearchCV,
        HistGradientBoostingClassifier(max_iter=50, early_stopping=False, random_state=0),
        space, X, y, n_candidates=n_candidates, min_resources="exhaust", factor=3, cv=3,
        random_state=0)
    records = measure(ctx, "halving-random", contenders, baseline="sklearn loky",
                      check=_halving_check())
    _note_idle(ctx, records, last)
    return records


def _note_idle(ctx: Context, records, last) -> None:
    """Add each contender's idle slot-seconds to its notes: slots x wall time of its last
    run minus the time its fits spent fitting and scoring (cv_results_' mean times x
    folds), i.e. time its slots waited: for the rounds' last fits, and on overhead;
    its work bound (fits and refit over its slots: no schedule on them is faster); and
    for distsk the fits and refit run ahead."""
    import os

    threads = sum(ctx.client.nthreads().values())
    for r in records:
        search = last.get(r["contender"])
        if search is None or not r["times_s"]:
            continue
        res = search.cv_results_
        busy = float(np.sum(res["mean_fit_time"] + res["mean_score_time"])) * search.n_splits_
        plan = getattr(search, "plan_", None)
        slots = plan.n_jobs if plan is not None else (
            threads if "dask" in r["contender"] else os.cpu_count())
        wall = r["times_s"][-1]
        refit = float(getattr(search, "refit_time_", 0.0) or 0.0)
        ahead = ""
        if hasattr(search, "n_fits_ahead_"):
            ahead = (f"{search.n_fits_ahead_} fits run ahead of their round, "
                     f"{search.n_fits_discarded_} discarded; refit "
                     + ("ran ahead" if getattr(search, "_refit_ran_ahead", False)
                        else "after the last fit"))
        r["notes"] = "; ".join(filter(None, [
            r["notes"], f"idle slot-seconds: {slots * wall - busy:.1f} of "
                        f"{slots * wall:.1f} ({slots} slots)",
            # No schedule on these slots beats its own work spread over all of them.
            f"work bound (fits + refit) / slots: {(busy + refit) / slots:.2f} s", ahead]))


@scenario("halving-trees")
def halving_trees(ctx: Context) -> list[dict]:
    """HalvingGridSearchCV over a seeded forest, resource n_estimators: 27 candidates,
    rounds of 9, 27, 81 and 243 trees; distsk grows survivors' forests."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from distsk import DistributedHalvingGridSearchCV
    from distsk._compat import HalvingGridSearchCV

    rows, trees = (300, 27) if ctx.smoke else (2_000, 243)
    X, y = make_classification(n_samples=rows, n_features=10, n_informative=5,
                               random_state=0)
    grid = {"max_depth": [4, 8, None], "max_features": [1, 3, "sqrt"],
            "min_samples_leaf": [1, 3, 10]}
    contenders, last = _halving_contenders(
        ctx, HalvingGridSearchCV, DistributedHalvingGridSearchCV,
        RandomForestClassifier(random_state=0), grid, X, y, resource="n_estimators",
        max_resources=trees, factor=3, cv=3, random_state=0)
    records = measure(ctx, "halving-trees", contenders, baseline="sklearn loky",
                      check=_halving_check())
    _note_idle(ctx, records, last)
    for r in records:
        search = last.get(r["contender"])
        if search is None:
            continue
        fitted = getattr(search, "n_trees_fitted_", None)
        if fitted is None:  # sklearn fits every round's forests from scratch
            fitted = search.n_splits_ * sum(
                c * n for c, n in zip(search.n_candidates_, search.n_resources_))
        grown = getattr(search, "n_fits_grown_", 0)
        r["notes"] = "; ".join(filter(None, [
            r["notes"], f"trees fitted: {fitted}",
            f"{grown} fits grown from the previous round" if grown else ""]))
    return records


@scenario("scale-sim")
def scale_sim(ctx: Context) -> list[dict]:
    """64 slots simulated on this machine: sleeping fits measure orchestration (#10).

    A LocalCluster of 4 processes x 16 threads of its own; 2,000 fits of 0.5 s and of
    50 ms. sklearn under joblib's Dask backend runs 640 of them (10 waves): at its speed
    2,000 would take minutes; its efficiency is per fit, so comparable. Efficiency =
    fits x fit duration / 64 / time, in the notes. The curve over 8-128 slots and the
    profile are ``benchmarks/scale_sim.py``.
    """
    import scale_sim as sim

    slots = 64
    n_fits = 200 if ctx.smoke else 2000
    lc, client = sim.cluster(slots)
    records = []
    try:
        for seconds in (0.5, 0.05):
            counts = {"distsk": n_fits, "dask-ml": n_fits,
                      "sklearn joblib-dask": 200 if ctx.smoke else 640}
            contenders = [
                Contender(name, (lambda name=name, s=seconds, n=counts[name]: sim.RUNNERS[name](
                    client, s, n)), n_fits=counts[name])
                for name in counts
            ] + [Contender("distsk auto", (lambda s=seconds: sim.run_distsk(
                client, s, n_fits, backend="auto")), n_fits=n_fits,
                notes="no backend forced, client=the 64-slot cluster")]

            def check(name, result, results, seconds=seconds):
                ref = results.get("dask-ml")
                if ref is None or name == "sklearn joblib-dask":
                    return None, ""
                same = np.array_equal(result.cv_results_["mean_test_score"],
                                      ref.cv_results_["mean_test_score"])
                return same, "mean_test_score as dask-ml's" if same else "differs"

            label = f"scale-sim {seconds * 1e3:.0f} ms"
            out = measure(ctx, label, contenders, baseline="dask-ml", check=check)
            for r in out:
                if r["median_s"]:
                    eff = sim.efficiency(slots, seconds, r["n_fits"], r["median_s"])
                    r["notes"] = "; ".join(filter(None, [f"efficiency {eff:.2f} on "
                                                         f"{slots} slots", r["notes"]]))
            records += out
    finally:
        client.close()
        lc.close()
    return records


@scenario("stragglers")
def stragglers(ctx: Context) -> list[dict]:
    """One worker whose fits take 10x as long (#10): distsk copies its late units to idle
    workers, so the search should take at most 1.3x its time without that worker.

    3 worker processes x 4 threads, then a fourth whose fits sleep 10x longer
    (``DISTSK_SLEEPY_SLOWDOWN`` in its environment); 480 fits of 0.2 s.
    """
    import os

    import scale_sim as sim
    from distributed import Client, LocalCluster

    n_fits, seconds = (60, 0.05) if ctx.smoke else (480, 0.2)
    lc = LocalCluster(n_workers=3, threads_per_worker=4, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None)
    client = Client(lc, set_as_default=False)
    records = []
    try:
        client.wait_for_workers(3, timeout=60)
        without = [Contender("distsk, 3 workers", lambda: sim.run_distsk(client, seconds, n_fits),
                             n_fits=n_fits)]
        records += measure(ctx, "stragglers", without, baseline="distsk, 3 workers")
        os.environ["DISTSK_SLEEPY_SLOWDOWN"] = "10"
        try:
            lc.scale(4)  # the new worker process inherits the slowdown
            client.wait_for_workers(4, timeout=60)
        finally:
            del os.environ["DISTSK_SLEEPY_SLOWDOWN"]
        with_slow = [
            Contender("distsk, + 1 slow worker",
                      lambda: sim.run_distsk(client, seconds, n_fits), n_fits=n_fits,
                      notes="copies of late units"),
            Contender("dask-ml, + 1 slow worker",
                      lambda: sim.run_dask_ml(client, seconds, n_fits), n_fits=n_fits),
            Contender("distsk auto, + 1 slow worker",
                      lambda: sim.run_distsk(client, seconds, n_fits, backend="auto"),
                      n_fits=n_fits, notes="no backend forced, client=this cluster"),
        ]
        out = measure(ctx, "stragglers", with_slow, baseline="distsk, + 1 slow worker")
        base = records[0]["median_s"]
        for r in out:
            r["baseline"] = records[0]["contender"]
            if r["median_s"] and base:
                r["ratio_to_baseline"] = round(r["median_s"] / base, 3)
        records += out
    finally:
        client.close()
        lc.close()
    return records


# ------------------------------------------------------------------- one-line (#15)
def _cv_results_check(reference: str):
    """Equal when every cv_results_ key but the timings is identical to the reference's."""
    timing = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}

    def check(name, result, results):
        if reference not in results:
            return None, f"not compared: {reference!r} failed"
        ref, got = results[reference].cv_results_, result.cv_results_
        if set(ref) != set(got):
            return False, f"cv_results_ keys differ from {reference!r}'s"
        for key in set(ref) - timing:
            a, b = ref[key], got[key]
            same = a == b if key == "params" else np.array_equal(
                np.ma.getdata(a), np.ma.getdata(b))
            if not same:
                return False, f"cv_results_[{key!r}] differs from {reference!r}'s"
        return True, ""

    return check


def _one_line_contenders(ctx: Context, make_search):
    """One unchanged sklearn search under joblib backends: "loky" (plain), "dask" (the
    recipe distsk grew from), and "distsk" (auto, and each engine named)."""
    from joblib import parallel_config

    def under(backend, **options):
        def run():
            with parallel_config(backend=backend, **options) as config:
                search = make_search().fit()
            plans = getattr(config["backend"], "plans", None)
            if plans:  # where distsk ran the fits (the table's plan column)
                search.plan_ = plans[-1]
            return search
        return run

    return [
        Contender("loky", under("loky"), notes="GridSearchCV(n_jobs=-1), joblib's default"),
        Contender("dask", under("dask", client=ctx.client),
                  notes="parallel_config(backend='dask'): the recipe"),
        Contender("distsk auto", under("distsk"),
                  notes="parallel_config(backend='distsk'): engine 'auto' (the cluster is "
                        "the default client)"),
        Contender("distsk engine=loky", under("distsk", engine="loky")),
        Contender("distsk engine=dask", under("distsk", engine="dask", client=ctx.client)),
    ]


class _Search:
    """A GridSearchCV with its data: ``fit()`` fits a fresh clone of it (n_jobs=-1)."""

    def __init__(self, estimator, grid, X, y, cv):
        self.estimator, self.grid, self.X, self.y, self.cv = estimator, grid, X, y, cv

    def fit(self):
        from sklearn.base import clone
        from sklearn.model_selection import GridSearchCV

        return GridSearchCV(clone(self.estimator), self.grid, cv=self.cv,
                            n_jobs=-1).fit(self.X, self.y)


@scenario("one-line")
def one_line(ctx: Context) -> list[dict]:
    """The rf-grid and pipeline-grid searches written with sklearn's own GridSearchCV,
    unchanged, under joblib's "loky", "dask" and distsk's "distsk" backends."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import distsk  # noqa: F401  (registers the "distsk" joblib backend)

    s = ctx.sizes
    X, y = make_classification(n_samples=s.grid_rows, n_features=s.grid_cols,
                               n_informative=2, n_redundant=0, random_state=0)
    rf = _Search(RandomForestClassifier(random_state=0), s.rf_grid, X, y, s.cv)
    Xp, yp = make_classification(s.pipe_rows, s.pipe_cols, random_state=0)
    pipe = make_pipeline(StandardScaler(),
                         Nystroem(n_components=s.pipe_components, random_state=0),
                         LogisticRegression(max_iter=1000))
    grid = {"nystroem__gamma": [0.005, 0.02],
            "logisticregression__C": [0.01, 0.1, 1.0, 10.0, 100.0]}
    pipeline = _Search(pipe, grid, Xp, yp, s.pipe_cv)
    records = []
    for name, search in (("one-line rf-grid", rf), ("one-line pipeline-grid", pipeline)):
        records += measure(ctx, name, _one_line_contenders(ctx, lambda s=search: s),
                           baseline="loky", check=_cv_results_check("loky"))
    return records + _one_line_forest(ctx)


def _one_line_forest(ctx: Context) -> list[dict]:
    """One forest fit (no search) under the backends: its per-tree jobs ask for threads.

    "distsk" runs them on local threads, as joblib's default does; the alternative,
    per-tree jobs as calls on distsk's engine (batched into Dask tasks), is measured
    here with a variant of the backend that ignores ``prefer="threads"``.
    """
    from joblib import parallel_config, register_parallel_backend
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from distsk._face.joblib_backend import DistskBackend

    class TreesOnEngine(DistskBackend):
        def configure(self, n_jobs=1, parallel=None, prefer=None, **kwargs):
            return super().configure(n_jobs, parallel, prefer=None, **kwargs)

    register_parallel_backend("distsk-trees-on-engine", TreesOnEngine)
    s = ctx.sizes
    X, y = make_classification(s.forest_rows, s.forest_cols, random_state=0)

    def under(backend, **options):
        def run():
            with parallel_config(backend=backend, **options):
                return RandomForestClassifier(n_estimators=s.forest_trees, random_state=0,
                                              n_jobs=-1).fit(X, y)
        return run

    contenders = [
        Contender("loky", under("loky"), n_fits=1, notes="threads, joblib's default"),
        Contender("dask", under("dask", client=ctx.client), n_fits=1,
                  notes="the recipe: one Dask task per tree"),
        Contender("distsk auto", under("distsk"), n_fits=1,
                  notes="engine 'auto': per-tree jobs on local threads"),
        Contender("distsk, trees on the engine",
                  under("distsk-trees-on-engine", engine="dask", client=ctx.client),
                  n_fits=1, notes="the alternative: per-tree jobs batched into Dask tasks"),
    ]
    check = _prediction_check("loky", X[: min(len(X), 2_000)], method="predict_proba")
    return measure(ctx, "one-line forest", contenders, baseline="loky", check=check)


# Scenarios kept in their own modules register themselves when imported.
import larger_than_memory  # noqa: E402, F401  (larger-than-memory-lr, #12)
