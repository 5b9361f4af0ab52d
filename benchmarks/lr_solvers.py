"""dask-glm's solvers and distsk's Newton on data larger than the cluster's memory (#12).

    flock /tmp/distsk-bench.lock python benchmarks/lr_solvers.py [--quick] [--out DIR]
    flock /tmp/distsk-bench.lock python benchmarks/lr_solvers.py --slow

The measurements behind the dask-ml engine's solver rule (``choose_solver`` in
distsk/_decide/dask_ml_rules.py). Every solver fits sklearn's model -- LogisticRegression
with C=1 (L2 penalty, the intercept free) or with no penalty -- on raw features, as
distsk translates it; each result's coefficients are compared with sklearn's optimum
(lbfgs at tol=1e-10 on the gathered data). A shape runs on two clusters of 2 worker
processes x 1 thread: "spilled" (memory_limit 100 MB each, managed memory spilled to
disk above 60%: the data are 1.6x the cluster's memory limit, 2.7x what it keeps in
memory) and "in memory" (2 GB each). Data: 160 MB of float64 (40 MB with --quick),
uncentred features. ``--slow`` measures admm, proximal_grad and gradient_descent beside
lbfgs and Newton instead, on the spilled cluster at 20 and 100 features and a quarter of
the data (they are 5-20x slower). One untimed fit per cluster first (imports, workers).

Writes ``lr_solvers.json`` and ``lr_solvers.md`` to ``--out`` (default
benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOTAL_BYTES = 160e6
SHAPES_FEATURES = (20, 100, 400, 1000)
#: dask-glm solvers that take a penalty (admm, proximal_grad, lbfgs) get distsk's L2 with
#: a free intercept; newton and gradient_descent take none: measured unpenalised only.
PENALISED = ("distsk newton", "lbfgs")
UNPENALISED = ("distsk newton", "newton", "lbfgs")
SLOW_PENALISED = ("distsk newton", "lbfgs", "admm", "proximal_grad")
SLOW_UNPENALISED = ("distsk newton", "newton", "lbfgs", "gradient_descent")


def cluster(memory_limit: str):
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({
        "distributed.worker.memory.target": 0.6,  # spill managed data above 60% of the limit
        "distributed.worker.memory.spill": False,  # not on process memory (RSS > 100 MB)
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
    }):
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=memory_limit, host="127.0.0.1",
                          dashboard_address=None, worker_dashboard_address=None)
    return lc, Client(lc)


def make_data(client, rows: int, cols: int, seed: int = 0):
    """Uncentred features and labels from a logistic model, generated on the workers."""
    import dask.array as da
    from distributed import wait

    chunk_rows = max(1_000, int(8e6 // (8 * cols)))  # ~8 MB blocks
    rs = da.random.RandomState(seed)
    X = rs.normal(0.5, 1.0, size=(rows, cols), chunks=(chunk_rows, cols))
    w = np.random.RandomState(seed).normal(0, 1 / np.sqrt(cols), cols)
    p = 1 / (1 + da.exp(-(X @ w - 0.5 * w.sum() + 0.3)))
    y = (rs.uniform(size=rows, chunks=chunk_rows) < p).astype(np.float64)
    X, y = client.persist([X, y])
    wait([X, y])
    return X, y


def fit_one(solver: str, X, y, C: float, max_iter: int = 100, tol: float = 1e-4):
    """(coef with intercept last, seconds) for one solver on sklearn's model."""
    from dask_ml.linear_model import LogisticRegression as DaskMLLR

    from distsk._engines.dask_ml import _fit_newton, _l2, quiet_dask_ml

    kwargs = dict(C=C, fit_intercept=True, max_iter=max_iter, tol=tol)
    start = time.perf_counter()
    with quiet_dask_ml(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if solver == "distsk newton":
            m = _fit_newton("LogisticRegression", kwargs, X, y)
        else:
            m = DaskMLLR(solver=solver, penalty=_l2(True), solver_kwargs={"normalize": False},
                         **kwargs).fit(X, y)
    seconds = time.perf_counter() - start
    return np.r_[np.ravel(m.coef_), float(np.ravel(m.intercept_)[0])], seconds


def reference(X, y, C: float):
    import dask
    from sklearn.linear_model import LogisticRegression

    # Block by block: X.compute() concatenates on one worker, over its memory limit (#12).
    Xn = np.concatenate(dask.compute(*X.to_delayed().ravel()))
    yn = np.concatenate(dask.compute(*y.to_delayed().ravel()))
    m = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(Xn, yn)
    return np.r_[m.coef_.ravel(), m.intercept_[0]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="~60 MB of data, 20 and 100 features")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--features", type=int, nargs="*", default=None)
    ap.add_argument("--clusters", nargs="*", default=None)
    ap.add_argument("--slow", action="store_true", help="admm, proximal_grad, gradient_descent")
    ap.add_argument("--total-mb", type=float, default=None, help="data size (default 160)")
    ap.add_argument("--spilled-limit", default="100MB", help="spilled cluster's memory_limit")
    ap.add_argument("--penalised-only", action="store_true", help="C=1 only")
    ap.add_argument("--stem", default=None, help="output file name stem")
    args = ap.parse_args(argv)
    total = TOTAL_BYTES / 4 if args.quick or args.slow else TOTAL_BYTES
    total = total if args.total_mb is None else args.total_mb * 1e6
    features = args.features or ((20, 100) if args.quick or args.slow else SHAPES_FEATURES)
    clusters = args.clusters or (["spilled"] if args.slow else ["spilled", "in memory"])
    cases = (("l2", 1.0, SLOW_PENALISED), (None, np.inf, SLOW_UNPENALISED)) if args.slow else (
        ("l2", 1.0, PENALISED), (None, np.inf, UNPENALISED))
    limits = {"spilled": args.spilled_limit, "in memory": "2GB"}
    if args.penalised_only:
        cases = cases[:1]
    records = []
    for where in clusters:
        lc, client = cluster(limits[where])
        try:
            X, y = make_data(client, 10_000, 5, seed=1)
            fit_one("distsk newton", X, y, 1.0)
            fit_one("lbfgs", X, y, 1.0)
            for cols in features:
                rows = int(total // (8 * cols))
                X, y = make_data(client, rows, cols)
                for penalty, C, solvers in cases:
                    ref = reference(X, y, C)
                    for solver in solvers:
                        coef, seconds = fit_one(solver, X, y, C)
                        err = float(np.max(np.abs(coef - ref)) / np.max(np.abs(ref)))
                        rec = dict(cluster=where, rows=rows, features=cols, penalty=penalty,
                                   solver=solver, seconds=round(seconds, 2),
                                   coef_rel_error=float(f"{err:.3g}"))
                        records.append(rec)
                        print(json.dumps(rec), flush=True)
                del X, y
        finally:
            client.close()
            lc.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.stem or ("lr_solvers_slow" if args.slow else "lr_solvers")
    (out / f"{stem}.json").write_text(json.dumps(records, indent=1))
    lines = ["| cluster | rows x features | penalty | solver | seconds | max coef error / max coef |",
             "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['cluster']} | {r['rows']:,} x {r['features']} | {r['penalty']} | "
                     f"{r['solver']} | {r['seconds']} | {r['coef_rel_error']:.2g} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
