"""The ``larger-than-memory-lr`` scenario (#12): LogisticRegression on data over the
cluster's memory, distsk against dask-ml's solvers, coefficients against sklearn's.

    flock /tmp/distsk-bench.lock python benchmarks/larger_than_memory.py [run.py options]

runs it through ``run.py`` (its own cluster; results in
benchmarks/results/larger-than-memory unless ``--out`` is given). Registered in
``scenarios.SCENARIOS`` when imported (scenarios.py imports it at its end, so
``run.py --scenarios larger-than-memory-lr`` runs it too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import Contender, Context, measure  # noqa: E402
from scenarios import _as_numpy, scenario  # noqa: E402
from spilling import spilling_cluster  # noqa: E402


def _coef_check(reference: str, tolerance: float = 1e-4):
    """Equal when the fitted coefficients and intercept are the reference's to
    ``tolerance`` x the largest reference coefficient; the note gives the difference."""

    def coefs(model):
        model = getattr(model, "estimator_", model)
        return np.r_[np.ravel(_as_numpy(model.coef_)), np.ravel(_as_numpy(model.intercept_))]

    def check(name, result, results):
        if reference not in results:
            return None, f"not compared: {reference!r} failed"
        want = coefs(results[reference])
        err = float(np.max(np.abs(coefs(result) - want)) / np.max(np.abs(want)))
        return err <= tolerance, f"coefficients differ from {reference!r}'s by {err:.2g} " \
                                 "x the largest"

    return check


def larger_than_memory_lr(ctx: Context) -> list[dict]:
    """LogisticRegression on data 1.6x the cluster's memory limit, spilling (#12).

    2 worker processes x 1 thread, memory_limit 25 MB each (managed memory spilled to disk
    above 60%); 80 MB of uncentred float64 data, 500,000 x 20: 1.6x the cluster's memory
    limit, 2.7x what it keeps in memory (smoke: 50,000 x 20, same workers). One untimed
    fit of each kind first (imports on the new workers). distsk (its Newton, chosen by the solver rule; max_gather_bytes=0 stands for
    a client that cannot hold the data either) against dask-ml as a user calls it: its
    default solver (admm) and its faster ones (lbfgs; newton, which drops the penalty).
    Coefficients are compared with sklearn's optimum (lbfgs, tol=1e-10) on the same data
    gathered block by block, to 1e-4 x the largest coefficient.
    """
    import dask.array as da
    from distributed import Client, wait
    from sklearn.linear_model import LogisticRegression

    from distsk import DistributedEstimator

    rows, cols = (50_000, 20) if ctx.smoke else (500_000, 20)
    lc = spilling_cluster(n_workers=2, memory_limit="25MB")
    client = Client(lc, set_as_default=False)
    try:
        rs = da.random.RandomState(0)
        X = rs.normal(0.5, 1.0, size=(rows, cols), chunks=(50_000, cols))
        w = np.random.RandomState(0).normal(0, 1 / np.sqrt(cols), cols)
        p = 1 / (1 + da.exp(-(X @ w - 0.5 * w.sum() + 0.3)))
        y = (rs.uniform(size=rows, chunks=50_000) < p).astype(np.float64)
        X, y = client.persist([X, y])
        with client.as_current():
            wait([X, y])
        blocks = client.compute(list(X.to_delayed().ravel()) + list(y.to_delayed().ravel()))
        blocks = client.gather(blocks)  # block by block: X.compute() would concatenate
        Xn, yn = np.concatenate(blocks[:X.numblocks[0]]), np.concatenate(blocks[X.numblocks[0]:])
        del blocks
        where = (f"{rows:,} x {cols} ({X.nbytes / 1e6:.0f} MB) over 2 workers x 25 MB, "
                 "spilling")

        def dask_ml(solver=None):
            from dask_ml.linear_model import LogisticRegression as DaskMLLogisticRegression

            from distsk._engines.dask_ml import quiet_dask_ml

            kwargs = {} if solver is None else {"solver": solver}
            with client.as_current(), quiet_dask_ml():
                return DaskMLLogisticRegression(**kwargs).fit(X, y)

        small = X[:1_000], y[:1_000]
        DistributedEstimator(LogisticRegression(), client=client, max_gather_bytes=0).fit(*small)
        with client.as_current():
            from dask_ml.linear_model import LogisticRegression as DaskMLLogisticRegression

            DaskMLLogisticRegression(solver="newton").fit(*small)
        contenders = [
            Contender("distsk auto", lambda: DistributedEstimator(
                LogisticRegression(), client=client, max_gather_bytes=0).fit(X, y),
                n_fits=1, notes=where),
            Contender("dask-ml lbfgs", lambda: dask_ml("lbfgs"), n_fits=1,
                      notes="dask-ml's defaults otherwise (normalize, penalised intercept)"),
            Contender("dask-ml newton", lambda: dask_ml("newton"), n_fits=1,
                      notes="dask-glm's newton takes no penalty: C=1 is dropped"),
            Contender("dask-ml default (admm)", dask_ml, n_fits=1),
            Contender("sklearn optimum", lambda: LogisticRegression(
                tol=1e-10, max_iter=10_000).fit(Xn, yn), n_fits=1,
                notes="numpy in the client; the coefficients' reference"),
        ]
        return measure(ctx, "larger-than-memory-lr", contenders, baseline="distsk auto",
                       check=_coef_check("sklearn optimum"))
    finally:
        client.close()
        lc.close()


# Registered by the module under its own name only: run as a script (``__main__``, or
# ``__mp_main__`` in the workers spawn starts) it is registered by the import below.
if __name__ == "larger_than_memory":
    scenario("larger-than-memory-lr")(larger_than_memory_lr)
elif __name__ == "__main__":
    import larger_than_memory  # noqa: F401
    import run

    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(HERE / "results" / "larger-than-memory")]
    sys.exit(run.main(argv + ["--scenarios", "larger-than-memory-lr"]))
