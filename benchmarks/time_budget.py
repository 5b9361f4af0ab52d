"""Wall time of a search under ``time_budget`` (#24): at most the budget + 10 % + the refit?

Searches of sleeping fits (``sleepy.SleepyClassifier``: 50 ms and 1 s per fit; 4x more
work than the budget allows) run with a budget on loky and on a local Dask cluster;
for each, the wall time of ``fit``, the budget, the refit's time and the candidates
evaluated. Medians of ``--repeats`` runs, the engines interleaved.

    python benchmarks/time_budget.py [--repeats 3] [--out results/time_budget]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

from distsk import DistributedSearchCV

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from sleepy import SleepyClassifier  # noqa: E402

SLOTS = 2


def _search(seconds, budget, backend, client):
    # 4x the fits the budget holds on SLOTS slots, 5 folds.
    n = max(4, int(4 * budget * SLOTS / seconds / 5))
    grid = {"C": list(np.linspace(0.1, 10, n))}
    return DistributedSearchCV(SleepyClassifier(seconds=seconds), grid, cv=5, backend=backend,
                               client=client, n_jobs=SLOTS, time_budget=budget,
                               random_state=0), n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "time_budget"))
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    X, y = make_classification(n_samples=300, random_state=0)
    cases = [(0.05, 5.0), (1.0, 20.0)]
    rows = []
    with LocalCluster(n_workers=SLOTS, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as lc, Client(lc) as client:
        for seconds, budget in cases:
            runs: dict = {"loky": [], "dask": []}
            for _ in range(args.repeats):
                for backend in ("loky", "dask"):
                    search, n = _search(seconds, budget, backend, client)
                    started = time.perf_counter()
                    search.fit(X, y)
                    wall = time.perf_counter() - started
                    runs[backend].append((wall, search.refit_time_, search.n_candidates_evaluated_,
                                          search.time_budget_ended_, n))
            for backend, measured in runs.items():
                wall = statistics.median(m[0] for m in measured)
                refit = statistics.median(m[1] for m in measured)
                rows.append({"fit_s": seconds, "budget_s": budget, "engine": backend,
                             "wall_s": wall, "refit_s": refit,
                             "limit_s": budget * 1.1 + refit,
                             "within": wall <= budget * 1.1 + refit,
                             "evaluated": statistics.median(m[2] for m in measured),
                             "candidates": measured[0][4],
                             "ended": all(m[3] for m in measured), "runs": args.repeats})
    lines = ["# Searches under time_budget", "",
             f"Sleeping fits, {SLOTS} slots, 5 folds, 4x the work the budget holds; medians "
             f"of {args.repeats}.", "",
             "| fit (s) | budget (s) | engine | wall (s) | refit (s) | budget x 1.1 + refit "
             "| within | candidates evaluated / all |",
             "|--:|--:|---|--:|--:|--:|:-:|--:|"]
    lines += [f"| {r['fit_s']} | {r['budget_s']:.0f} | {r['engine']} | {r['wall_s']:.2f} | "
              f"{r['refit_s']:.2f} | {r['limit_s']:.2f} | {'yes' if r['within'] else 'NO'} | "
              f"{r['evaluated']:.0f} / {r['candidates']} |" for r in rows]
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
