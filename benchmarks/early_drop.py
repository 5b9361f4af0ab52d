"""``early_drop`` (#24 s3): fits saved, and whether ``best_params_`` stays the full search's.

Four searches no one tuned for early dropping, each over 10 seeds (the seed shuffles
the 5 folds, and samples the random search's candidates):

* ``svc-digits``: SVC on sklearn's digits, C x gamma over 6 x 6 log-spaced values;
* ``rf-grid``: the benchmarks' random-forest grid (16 candidates, 1,000 x 4 rows);
* ``pipeline-grid``: the benchmarks' Scaler -> Nystroem -> LogisticRegression grid
  (10 candidates; 1,500 rows and 300 components here, for time);
* ``hgb-random``: 50 candidates of HistGradientBoostingClassifier sampled over
  learning_rate, max_leaf_nodes, min_samples_leaf and l2_regularization (2,000 x 20).

For each seed: sklearn's GridSearchCV / RandomizedSearchCV (the full search) and
DistributedSearchCV(early_drop=confidence) on the same cv and candidates (loky, 2
slots); the (candidate, fold) fits distsk ran (``n_fits_performed_``, or on a shared
pipeline prefix ``n_final_step_fits_``: the prefix fits themselves are shared by the
candidates) against candidates x folds, and whether ``best_params_`` is equal. Goal (issue #24): at least 30% fewer fits with the
same ``best_params_`` in at least 9 of 10 seeds.

    python benchmarks/early_drop.py [--seeds 10] [--confidence 0.95] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import loguniform, randint
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold

from distsk import DistributedSearchCV

HERE = Path(__file__).resolve().parent


def svc_digits():
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    grid = {"C": list(np.logspace(-2, 3, 6)), "gamma": list(np.logspace(-5, 0, 6))}
    return SVC(), grid, None, X / 16.0, y


def rf_grid():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=1000, n_features=4, n_informative=2,
                               n_redundant=0, random_state=0)
    grid = {"n_estimators": [50, 100], "max_depth": [3, 5, 8, None], "max_features": [1, 2]}
    return RandomForestClassifier(random_state=0), grid, None, X, y


def pipeline_grid():
    from sklearn.datasets import make_classification
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(1500, 50, random_state=0)
    pipe = make_pipeline(StandardScaler(), Nystroem(n_components=300, random_state=0),
                         LogisticRegression(max_iter=1000))
    grid = {"nystroem__gamma": [0.005, 0.02],
            "logisticregression__C": [0.01, 0.1, 1.0, 10.0, 100.0]}
    return pipe, grid, None, X, y


def hgb_random():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(2000, 20, n_informative=8, random_state=0)
    dists = {"learning_rate": loguniform(0.01, 1.0), "max_leaf_nodes": randint(2, 64),
             "min_samples_leaf": randint(1, 100), "l2_regularization": loguniform(1e-6, 10)}
    return (HistGradientBoostingClassifier(max_iter=50, early_stopping=False,
                                           random_state=0), None, dists, X, y)


SEARCHES = {"svc-digits": svc_digits, "rf-grid": rf_grid, "pipeline-grid": pipeline_grid,
            "hgb-random": hgb_random}


def one(name: str, seed: int, confidence: float) -> dict:
    estimator, grid, dists, X, y = SEARCHES[name]()
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    if grid is not None:
        full = GridSearchCV(estimator, grid, cv=cv, n_jobs=2)
        ours = DistributedSearchCV(estimator, grid, cv=cv, n_jobs=2, backend="loky",
                                   early_drop=confidence)
    else:
        full = RandomizedSearchCV(estimator, dists, n_iter=50, cv=cv, n_jobs=2,
                                  random_state=seed)
        ours = DistributedSearchCV(estimator, param_distributions=dists, n_iter=50, cv=cv,
                                   n_jobs=2, backend="loky", random_state=seed,
                                   early_drop=confidence)
    started = time.perf_counter()
    full.fit(X, y)
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    ours.fit(X, y)
    ours_s = time.perf_counter() - started
    n_full = len(full.cv_results_["params"]) * cv.get_n_splits()
    # (candidate, fold) fits run: on a shared pipeline prefix, its final-step fits.
    fits = ours.n_final_step_fits_ or ours.n_fits_performed_
    return {
        "search": name, "seed": seed, "full_fits": n_full,
        "fits": int(fits), "full_fits_performed": int(ours.n_fits_performed_),
        "saved": 1 - fits / n_full,
        "dropped": len(ours.dropped_candidates_),
        "candidates": len(full.cv_results_["params"]),
        "same_best": ours.best_params_ == full.best_params_,
        "full_s": full_s, "early_drop_s": ours_s,
    }


def report(rows: list[dict], confidence: float) -> str:
    lines = [f"# early_drop={confidence}: fits saved and best_params_ kept, per search",
             "",
             "| search | seeds | candidates | fits (full) | fits saved (median, min-max) | "
             "dropped (median) | same best_params_ | time full / early_drop (medians) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in SEARCHES:
        sub = [r for r in rows if r["search"] == name]
        if not sub:
            continue
        saved = [r["saved"] for r in sub]
        lines.append(
            f"| {name} | {len(sub)} | {sub[0]['candidates']} | {sub[0]['full_fits']} | "
            f"{np.median(saved):.0%} ({min(saved):.0%}-{max(saved):.0%}) | "
            f"{np.median([r['dropped'] for r in sub]):g} | "
            f"{sum(r['same_best'] for r in sub)} of {len(sub)} | "
            f"{np.median([r['full_s'] for r in sub]):.1f} s / "
            f"{np.median([r['early_drop_s'] for r in sub]):.1f} s |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--searches", default=",".join(SEARCHES))
    parser.add_argument("--out", default=str(HERE / "results" / "early_drop"))
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.seeds):
        for name in args.searches.split(","):
            rows.append(one(name, seed, args.confidence))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "early_drop.json").write_text(json.dumps(rows, indent=1))
    text = report(rows, args.confidence)
    (out / "early_drop.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
