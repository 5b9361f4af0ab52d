"""Small work under the joblib backend: what one ``Parallel`` call's sequence costs (#22).

sklearn code that makes a few short ``Parallel`` calls (StackingClassifier's
cross_val_predict per base estimator, RFECV's folds, learning_curve's sizes) pays
distsk's driver sequence -- finding the compute, planning, making a runner -- on each
call. Each job below runs with plain ``n_jobs=-1`` (joblib's loky) and under
``joblib.parallel_config(backend="distsk")`` (engine "auto", no cluster), interleaved,
in a shuffled order each round; the medians and their ratio are reported. The goal of
issue #22: every ratio within 1.05.

    python benchmarks/backend_small_calls.py [--repeats 7] [--out results/backend_small_calls]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
from joblib import parallel_config
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.feature_selection import RFECV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import learning_curve

import distsk  # noqa: F401  (registers the "distsk" joblib backend)


def _jobs(X, y):
    def stacking():
        return StackingClassifier(
            [("lr", LogisticRegression(max_iter=500)),
             ("rf", RandomForestClassifier(n_estimators=30, random_state=0))],
            n_jobs=-1).fit(X, y).predict(X)

    def rfecv():
        return RFECV(LogisticRegression(max_iter=500), step=2, cv=5, n_jobs=-1).fit(X, y).ranking_

    def curve():
        return learning_curve(RandomForestClassifier(n_estimators=20, random_state=0), X, y,
                              cv=5, n_jobs=-1, train_sizes=[0.2, 0.5, 1.0])[2]

    return {"StackingClassifier": stacking, "RFECV": rfecv, "learning_curve": curve}


def _timed(func, backend):
    started = time.perf_counter()
    if backend == "plain":
        out = func()
    else:
        with parallel_config(backend="distsk"):
            out = func()
    return time.perf_counter() - started, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "backend_small_calls"))
    args = parser.parse_args(argv)
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=8, random_state=0)
    jobs = _jobs(X, y)
    times = {(name, b): [] for name in jobs for b in ("plain", "distsk")}
    same = {}
    for name, job in jobs.items():  # warm-up: imports, loky's pool, the cost model
        _, plain = _timed(job, "plain")
        _, ours = _timed(job, "distsk")
        same[name] = bool(np.array_equal(plain, ours))
    rng = random.Random(0)
    for _ in range(args.repeats):
        order = [(name, b) for name in jobs for b in ("plain", "distsk")]
        rng.shuffle(order)
        for name, backend in order:
            times[name, backend].append(_timed(jobs[name], backend)[0])
    rows = []
    for name in jobs:
        plain, ours = (statistics.median(times[name, b]) for b in ("plain", "distsk"))
        rows.append({"job": name, "plain_s": plain, "distsk_s": ours, "ratio": ours / plain,
                     "same_result": same[name], "runs": args.repeats})
    lines = [
        "# Small work under the joblib backend (engine 'auto', no cluster)", "",
        f"Medians of {args.repeats} runs each, plain and distsk interleaved in a shuffled "
        "order. Goal (#22): ratio <= 1.05.", "",
        "| job | plain n_jobs=-1 (s) | backend 'distsk' (s) | ratio | same result |",
        "|---|--:|--:|--:|:-:|",
    ]
    lines += [f"| {r['job']} | {r['plain_s']:.3f} | {r['distsk_s']:.3f} | {r['ratio']:.2f} | "
              f"{'yes' if r['same_result'] else 'NO'} |" for r in rows]
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
