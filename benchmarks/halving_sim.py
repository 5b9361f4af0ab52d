"""Successive halving on many slots, simulated on a small machine (#11).

    python benchmarks/halving_sim.py [--slots 16,32,64] [--candidates 81] [--out DIR]

Fits sleep (no CPU, GIL released), so a LocalCluster of worker threads (and a loky
pool of as many processes) hosts 16 to 64 "slots" on 2 cores. Two workloads, both with
the refit: "random (rows)", fits sleeping in proportion to their rows and to a
per-candidate slowness (rounds end, as real ones do, with a tail of slow fits; each
candidate's score is its ``quality`` plus a small deterministic wobble that depends on
the rows it saw, so rankings change between rounds), and "trees (n_estimators)", a
seeded forest of stumps whose fit also sleeps per new tree, so a grown forest sleeps
only for the trees it adds.

Contenders, one after another: sklearn's halving search on loky (``slots`` processes)
and under joblib's Dask backend, distsk's (backend="dask") with fits run ahead, and the
same with running ahead switched off. Reported per contender: wall time, ideal time
(the fits' and refit's sleeping time / slots), idle slot-seconds, the fits run ahead /
discarded and how the refit ran. Every search's cv_results_ and best_params_ are
checked against sklearn loky's. Writes ``halving_sim.json`` and ``halving_sim.md`` to
``--out``.

The stumps of the trees workload are real fits (about 0.9 ms of CPU per tree on a fold's
1,800 rows): with the default 2 ms of sleep per tree and 1,000 rows, 64 busy slots ask
the 2 cores for ~13 cores' worth, so the run measures the cores. ``--only trees
--seconds-per-row 1e-2`` (20 ms per tree) asks for ~1.6 and measures the orchestration
(``results/halving-sim-trees-slow``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from scale_sim import cluster  # noqa: E402  (4 worker processes, warmed up)


class SleepyHalvingClassifier(ClassifierMixin, BaseEstimator):
    """``fit`` sleeps ``seconds_per_row x rows x (1 + 3 slowness)``; ``score`` is
    ``quality`` plus a wobble of +-0.02 that depends on the rows seen."""

    def __init__(self, quality=0.5, slowness=0.0, seconds_per_row=1e-4):
        self.quality = quality
        self.slowness = slowness
        self.seconds_per_row = seconds_per_row

    def fit(self, X, y):
        time.sleep(self.seconds(len(X)))
        self.n_rows_ = len(X)
        self.classes_ = np.unique(y)
        return self

    def seconds(self, rows: int) -> float:
        return self.seconds_per_row * rows * (1.0 + 3.0 * self.slowness)

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y, sample_weight=None):
        return float(self.quality + 0.02 * np.sin(7.0 * self.n_rows_ + 100.0 * self.quality))


class SleepyForest(RandomForestClassifier):
    """A seeded forest (of stumps, by default) whose ``fit`` also sleeps
    ``seconds_per_tree`` per new tree and 1,000 rows, so that growing it (a warm start)
    sleeps only for the trees it adds, as a real forest's fit time grows; its score is
    the real forest's. distsk grows only the exact sklearn classes it knows; this one is
    declared growable as RandomForestClassifier (:func:`declare_growable`): its fit is
    that class's own, after the sleep."""

    def __init__(self, n_estimators=100, *, criterion="gini", max_depth=1,
                 min_samples_split=2, min_samples_leaf=1, min_weight_fraction_leaf=0.0,
                 max_features="sqrt", max_leaf_nodes=None, min_impurity_decrease=0.0,
                 bootstrap=True, oob_score=False, n_jobs=None, random_state=0, verbose=0,
                 warm_start=False, class_weight=None, ccp_alpha=0.0, max_samples=None,
                 monotonic_cst=None, seconds_per_tree=2e-3):
        super().__init__(
            n_estimators=n_estimators, criterion=criterion, max_depth=max_depth,
            min_samples_split=min_samples_split, min_samples_leaf=min_samples_leaf,
            min_weight_fraction_leaf=min_weight_fraction_leaf, max_features=max_features,
            max_leaf_nodes=max_leaf_nodes, min_impurity_decrease=min_impurity_decrease,
            bootstrap=bootstrap, oob_score=oob_score, n_jobs=n_jobs,
            random_state=random_state, verbose=verbose, warm_start=warm_start,
            class_weight=class_weight, ccp_alpha=ccp_alpha, max_samples=max_samples,
            monotonic_cst=monotonic_cst)
        self.seconds_per_tree = seconds_per_tree

    def fit(self, X, y, sample_weight=None):
        have = len(getattr(self, "estimators_", ())) if self.warm_start else 0
        time.sleep(self.seconds_per_tree * max(0, self.n_estimators - have) * len(X) / 1e3)
        return super().fit(X, y, sample_weight=sample_weight)


def declare_growable():
    """Let distsk grow :class:`SleepyForest` as it grows RandomForestClassifier (run in
    every process that plans or runs fits)."""
    import distsk._units.sharing as sharing

    known = sharing._size_params
    if getattr(known, "sleepy", False):
        return
    sharing._size_params = lambda: {**known(), SleepyForest: "n_estimators"}
    sharing._size_params.sleepy = True


def forest_grid():
    return {"criterion": ["gini", "entropy", "log_loss"], "min_samples_leaf": [1, 2, 3],
            "max_features": [1, 2, 3]}


def space():
    from scipy.stats import uniform

    return {"quality": uniform(0, 1), "slowness": uniform(0, 1)}


def search_kwargs(n_candidates: int, refit: bool = True) -> dict:
    return dict(n_candidates=n_candidates, factor=3, cv=3, min_resources="exhaust",
                random_state=0, refit=refit)


def data(rows: int):
    rng = np.random.RandomState(0)
    return rng.rand(rows, 4), np.arange(rows) % 2


def sleeping_seconds(search) -> float:
    """The fits' own time (fit + score, as the search measured it): what ``slots``
    slots cannot do faster than in that time / slots."""
    res = search.cv_results_
    return float(np.sum(res["mean_fit_time"] + res["mean_score_time"])) * search.n_splits_


def workloads(n_candidates: int, seconds_per_row: float):
    """``(name, sklearn class, distsk class, estimator, space, search keywords)``."""
    from distsk import DistributedHalvingGridSearchCV, DistributedHalvingRandomSearchCV
    from distsk._compat import HalvingGridSearchCV, HalvingRandomSearchCV

    return [
        ("random (rows)", HalvingRandomSearchCV, DistributedHalvingRandomSearchCV,
         SleepyHalvingClassifier(seconds_per_row=seconds_per_row), space(),
         search_kwargs(n_candidates)),
        # 27 candidates; rounds of 9, 27, 81 and 243 trees.
        ("trees (n_estimators)", HalvingGridSearchCV, DistributedHalvingGridSearchCV,
         SleepyForest(seconds_per_tree=seconds_per_row * 2), forest_grid(),
         dict(resource="n_estimators", max_resources=243, factor=3, cv=3,
              random_state=0)),
    ]


def run_case(slots: int, n_candidates: int, rows: int, seconds_per_row: float,
             only: str | None = None) -> list[dict]:
    from joblib import parallel_config

    import distsk._search.halving_rounds as halving

    X, y = data(rows)
    lc, client = cluster(slots)
    declare_growable()
    client.run(declare_growable)
    records = []
    try:
        for workload, sk_cls, ds_cls, est, grid, kw in workloads(n_candidates,
                                                                 seconds_per_row):
            if only and not workload.startswith(only):
                continue
            # Warm-up (imports, task paths, sklearn's loky pool of ``slots``
            # processes), not timed.
            quick = est.set_params(**{k: 0.0 for k in est.get_params()
                                      if k.startswith("seconds_per")})
            sk_cls(quick, grid, n_jobs=slots, **kw).fit(X, y)
            ds_cls(quick, grid, backend="dask", client=client, **kw).fit(X, y)
            est.set_params(**{k: (seconds_per_row * 2 if k == "seconds_per_tree"
                                  else seconds_per_row)
                              for k in est.get_params() if k.startswith("seconds_per")})

            def sklearn_loky(sk_cls=sk_cls, est=est, grid=grid, kw=kw):
                return sk_cls(est, grid, n_jobs=slots, **kw).fit(X, y)

            def sklearn_dask(sk_cls=sk_cls, est=est, grid=grid, kw=kw):
                with parallel_config(backend="dask", client=client):
                    return sk_cls(est, grid, n_jobs=-1, **kw).fit(X, y)

            def distsk(ahead, ds_cls=ds_cls, est=est, grid=grid, kw=kw):
                def fit():
                    halving.RUN_AHEAD = ahead
                    try:
                        return ds_cls(est, grid, backend="dask", client=client,
                                      **kw).fit(X, y)
                    finally:
                        halving.RUN_AHEAD = True
                return fit

            reference = None
            for name, run in [("sklearn loky", sklearn_loky),
                              ("sklearn joblib-dask", sklearn_dask),
                              ("distsk", distsk(True)),
                              ("distsk, nothing run ahead", distsk(False))]:
                start = time.perf_counter()
                search = run()
                wall = time.perf_counter() - start
                sleep = sleeping_seconds(search) + search.refit_time_
                res = search.cv_results_
                if reference is None:
                    reference, same = search, True
                else:
                    same = all(np.array_equal(res[k], reference.cv_results_[k])
                               for k in ("iter", "n_resources", "mean_test_score")) and (
                        search.best_params_ == reference.best_params_)
                records.append({
                    "workload": workload, "slots": slots, "contender": name,
                    "wall_s": round(wall, 3), "ideal_s": round(sleep / slots, 3),
                    "efficiency": round(sleep / slots / wall, 3),
                    "idle_slot_s": round(slots * wall - sleep, 1),
                    "refit_s": round(search.refit_time_, 3),
                    "refit_ahead": getattr(search, "_refit_ran_ahead", None),
                    "refit_parts": getattr(search, "_refit_parts", None),
                    "n_candidates": list(search.n_candidates_),
                    "fits_ahead": getattr(search, "n_fits_ahead_", None),
                    "fits_discarded": getattr(search, "n_fits_discarded_", None),
                    "trees_fitted": getattr(search, "n_trees_fitted_", None) or (
                        search.n_splits_ * sum(c * n for c, n in zip(
                            search.n_candidates_, search.n_resources_))
                        if "trees" in workload else None),
                    "same_as_sklearn": bool(same),
                })
                print(f"  {workload}, {slots} slots, {name}: {wall:.2f} s (ideal "
                      f"{sleep / slots:.2f} s, refit {search.refit_time_:.2f} s, ahead "
                      f"{records[-1]['fits_ahead']}/{records[-1]['fits_discarded']} "
                      f"used/discarded, refit ahead {records[-1]['refit_ahead']} in "
                      f"{records[-1]['refit_parts']}, trees {records[-1]['trees_fitted']}, "
                      f"same: {same})", flush=True)
    finally:
        client.close()
        lc.close()
    return records


def write(records, out: Path, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "halving_sim.json").write_text(json.dumps(records, indent=1))
    lines = [
        "# Successive halving on simulated slots (sleeping fits)", "",
        f"Two workloads, refit=True. random (rows): HalvingRandomSearchCV, "
        f"{args.candidates} candidates, factor 3, cv 3, min_resources='exhaust', "
        f"{args.rows} rows; fits sleep {args.seconds_per_row * 1e3:g} ms per training "
        "row x (1 + 3 slowness). trees (n_estimators): HalvingGridSearchCV over a seeded "
        "forest of stumps, 27 candidates, rounds of 9, 27, 81 and 243 trees; fits sleep "
        f"{args.seconds_per_row * 2e3:g} ms per new tree and 1,000 rows (a grown forest "
        "sleeps for the trees it adds). sklearn loky runs ``slots`` processes, the "
        "others a LocalCluster of 4 processes x slots/4 threads. Ideal = (the fits' own "
        "time + the refit's) / slots; efficiency = ideal / wall; idle slot-s = slots x "
        "wall - that time (the refit of sklearn's contenders counted, though it runs "
        "alone). Contenders run one after another, warm.", "",
        "| workload | slots | contender | wall (s) | ideal (s) | efficiency | idle slot-s "
        "| x sklearn loky | x sklearn joblib-dask | rounds | ahead used / discarded | "
        "refit | trees fitted | = sklearn |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|---|--:|---|--:|:-:|",
    ]
    def base(r, name):
        return next(b["wall_s"] for b in records if b["contender"] == name
                    and b["slots"] == r["slots"] and b["workload"] == r["workload"])

    for r in records:
        ahead = ("" if r["fits_ahead"] is None
                 else f"{r['fits_ahead']} / {r['fits_discarded']}")
        refit = f"{r['refit_s']:.2f} s"
        if r["refit_ahead"]:
            refit += f", ahead in {r['refit_parts']} part(s)"
        lines.append(
            f"| {r['workload']} | {r['slots']} | {r['contender']} | {r['wall_s']:.2f} | "
            f"{r['ideal_s']:.2f} | {r['efficiency']:.2f} | {r['idle_slot_s']:.1f} | "
            f"{r['wall_s'] / base(r, 'sklearn loky'):.2f} | "
            f"{r['wall_s'] / base(r, 'sklearn joblib-dask'):.2f} | {r['n_candidates']} | "
            f"{ahead} | {refit} | {r['trees_fitted'] or ''} | "
            f"{'yes' if r['same_as_sklearn'] else 'NO'} |")
    (out / "halving_sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", default="16,32,64")
    p.add_argument("--candidates", type=int, default=81)
    p.add_argument("--rows", type=int, default=2700)
    p.add_argument("--seconds-per-row", type=float, default=1e-3)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--only", choices=["random", "trees"], default=None,
                   help="one workload (default: both)")
    args = p.parse_args(argv)
    records = []
    for slots in (int(s) for s in args.slots.split(",")):
        records += run_case(slots, args.candidates, args.rows, args.seconds_per_row,
                            args.only)
    write(records, args.out, args)
    return 0 if all(r["same_as_sklearn"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
