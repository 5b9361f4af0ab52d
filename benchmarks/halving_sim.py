"""Successive halving on many slots, simulated on a small machine (#11).

    python benchmarks/halving_sim.py [--slots 16,32,64] [--candidates 81] [--out DIR]

Fits sleep (no CPU, GIL released) for a time proportional to their rows and to a
per-candidate slowness, so a LocalCluster of worker threads hosts 16 to 64 "slots" on 2
cores, and a halving search's rounds end, as real ones do, with a tail of slow fits.
Each candidate's score is its ``quality`` plus a small deterministic wobble that depends
on the rows it saw, so rankings change between rounds (and some fits run ahead for a
candidate that is then eliminated).

Contenders, on the same cluster, one after another: sklearn's HalvingRandomSearchCV
under joblib's Dask backend, distsk's DistributedHalvingRandomSearchCV (backend="dask")
with fits run ahead, and the same with running ahead switched off. Reported per
contender: wall time, ideal time (the fits' sleeping time / slots), idle slot-seconds
(slots x wall - sleeping time), and for distsk the fits run ahead / discarded. Every
search's cv_results_ is checked against sklearn's (mean_test_score, iter, n_resources).
Writes ``halving_sim.json`` and ``halving_sim.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

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


def space():
    from scipy.stats import uniform

    return {"quality": uniform(0, 1), "slowness": uniform(0, 1)}


def search_kwargs(n_candidates: int) -> dict:
    return dict(n_candidates=n_candidates, factor=3, cv=3, min_resources="exhaust",
                random_state=0, refit=False)


def data(rows: int):
    rng = np.random.RandomState(0)
    return rng.rand(rows, 4), np.arange(rows) % 2


def sleeping_seconds(search) -> float:
    """The fits' own time (fit + score, as the search measured it): what ``slots``
    slots cannot do faster than in that time / slots."""
    res = search.cv_results_
    return float(np.sum(res["mean_fit_time"] + res["mean_score_time"])) * search.n_splits_


def run_case(slots: int, n_candidates: int, rows: int, seconds_per_row: float) -> list[dict]:
    from joblib import parallel_config

    import distsk._halving as halving
    from distsk import DistributedHalvingRandomSearchCV
    from distsk._compat import HalvingRandomSearchCV

    X, y = data(rows)
    est = SleepyHalvingClassifier(seconds_per_row=seconds_per_row)
    kw = search_kwargs(n_candidates)
    lc, client = cluster(slots)
    records = []
    try:
        # Warm-up (imports, task paths), not timed.
        DistributedHalvingRandomSearchCV(
            SleepyHalvingClassifier(seconds_per_row=0.0), space(), backend="dask",
            client=client, **search_kwargs(9)).fit(X, y)

        def sklearn_dask():
            with parallel_config(backend="dask", client=client):
                return HalvingRandomSearchCV(est, space(), n_jobs=-1, **kw).fit(X, y)

        def distsk(ahead):
            def run():
                halving.RUN_AHEAD = ahead
                try:
                    return DistributedHalvingRandomSearchCV(
                        est, space(), backend="dask", client=client, **kw).fit(X, y)
                finally:
                    halving.RUN_AHEAD = True
            return run

        reference = None
        for name, run in [("sklearn joblib-dask", sklearn_dask),
                          ("distsk", distsk(True)),
                          ("distsk, nothing run ahead", distsk(False))]:
            start = time.perf_counter()
            search = run()
            wall = time.perf_counter() - start
            sleep = sleeping_seconds(search)
            res = search.cv_results_
            if reference is None:
                reference, same = res, True
            else:
                same = all(np.array_equal(res[k], reference[k])
                           for k in ("iter", "n_resources", "mean_test_score"))
            records.append({
                "slots": slots, "contender": name, "wall_s": round(wall, 3),
                "ideal_s": round(sleep / slots, 3),
                "efficiency": round(sleep / slots / wall, 3),
                "idle_slot_s": round(slots * wall - sleep, 1),
                "n_candidates": list(search.n_candidates_),
                "fits_ahead": getattr(search, "n_fits_ahead_", None),
                "fits_discarded": getattr(search, "n_fits_discarded_", None),
                "same_as_sklearn": bool(same),
            })
            print(f"  {slots} slots, {name}: {wall:.2f} s (ideal {sleep / slots:.2f} s, "
                  f"idle {slots * wall - sleep:.1f} slot-s, ahead "
                  f"{records[-1]['fits_ahead']}/{records[-1]['fits_discarded']} "
                  f"used/discarded, same: {same})", flush=True)
    finally:
        client.close()
        lc.close()
    return records


def write(records, out: Path, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "halving_sim.json").write_text(json.dumps(records, indent=1))
    lines = [
        "# Successive halving on simulated slots (sleeping fits)", "",
        f"HalvingRandomSearchCV, {args.candidates} candidates, factor 3, cv 3, "
        f"min_resources='exhaust', {args.rows} rows, refit=False; fits sleep "
        f"{args.seconds_per_row * 1e3:g} ms per training row x (1 + 3 slowness); "
        "LocalCluster of 4 processes. Ideal = the fits' own time (fit + score, from "
        "cv_results_) / slots; efficiency = ideal / wall; idle slot-s = slots x wall - "
        "the fits' own time. Contenders run one after another on the same cluster.", "",
        "| slots | contender | wall (s) | ideal (s) | efficiency | idle slot-s | "
        "x sklearn | rounds | ahead used / discarded | = sklearn |",
        "|--:|---|--:|--:|--:|--:|--:|---|--:|:-:|",
    ]
    base = {r["slots"]: r["wall_s"] for r in records if r["contender"].startswith("sklearn")}
    for r in records:
        ahead = ("" if r["fits_ahead"] is None
                 else f"{r['fits_ahead']} / {r['fits_discarded']}")
        lines.append(
            f"| {r['slots']} | {r['contender']} | {r['wall_s']:.2f} | {r['ideal_s']:.2f} | "
            f"{r['efficiency']:.2f} | {r['idle_slot_s']:.1f} | "
            f"{r['wall_s'] / base[r['slots']]:.2f} | {r['n_candidates']} | {ahead} | "
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
    args = p.parse_args(argv)
    records = []
    for slots in (int(s) for s in args.slots.split(",")):
        records += run_case(slots, args.candidates, args.rows, args.seconds_per_row)
    write(records, args.out, args)
    return 0 if all(r["same_as_sklearn"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
