"""The ``distsk`` command: ``info``, ``demo`` and ``bench``.

``info`` prints versions and the compute profile; ``demo`` tells the classic
"sklearn + joblib + Dask" story on an embedded loopback cluster, checking each result
against plain scikit-learn; ``bench`` runs ``benchmarks/run.py`` from a source checkout.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

__all__ = ["main", "collect_versions"]

#: (label, distribution name, optional?) in the order ``distsk info`` prints them.
_PACKAGES = (
    ("scikit-learn", "scikit-learn", False),
    ("joblib", "joblib", False),
    ("numpy", "numpy", False),
    ("scipy", "scipy", False),
    ("pandas", "pandas", False),
    ("dask", "dask", False),
    ("distributed", "distributed", False),
    ("dask-ml", "dask-ml", True),
    ("xgboost", "xgboost", True),
)
#: Least share of predictions the larger-than-memory engines must share with the in-memory
#: fit. dask-ml's solver converges to the same optimum up to its tolerance; xgboost.dask
#: builds its histogram bins from a quantile sketch merged across workers, so its trees
#: differ slightly from a single-node fit by design (identical with one partition).
MIN_AGREEMENT_DASK_ML = 0.99
MIN_AGREEMENT_XGBOOST = 0.95


def collect_versions() -> list[tuple[str, str | None]]:
    """``(name, version)`` of Python, distsk and its dependencies; None if not installed.

    Read from package metadata, so nothing heavy is imported.
    """
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    out: list[tuple[str, str | None]] = [
        ("python", platform.python_version()), ("distsk", __version__),
    ]
    for label, dist, _ in _PACKAGES:
        try:
            out.append((label, version(dist)))
        except PackageNotFoundError:
            out.append((label, None))
    return out


# ---------------------------------------------------------------------------- info
def _info(args) -> int:
    from ._cluster import resolve_client
    from ._profile import profile_compute

    optional = {label for label, _, opt in _PACKAGES if opt}
    for name, ver in collect_versions():
        if ver is None:
            extra = f"  (install distsk[{name}])" if name in optional else ""
            ver = f"not installed{extra}"
        print(f"{name:<14}{ver}")
    print(f"{'compute':<14}{profile_compute(resolve_client(None)).describe()}")
    return 0


# ---------------------------------------------------------------------------- demo
class _Demo:
    """Runs the demo steps, prints one line each, remembers which ones failed."""

    def __init__(self):
        self.failures: list[str] = []

    def line(self, step, distsk_s, plain_s, outcome, reason, *, plain="sklearn"):
        print(
            f"{step:<32} distsk {distsk_s:6.2f} s | {plain} {plain_s:6.2f} s | "
            f"{outcome} | {reason}",
            flush=True,
        )

    def fail(self, step, message):
        self.failures.append(f"{step}: {message}")
        print(f"{step:<32} FAILED: {message}", flush=True)

    def run(self, step, func, *args):
        try:
            func(step, *args)
        except Exception as exc:
            traceback.print_exc()
            self.fail(step, f"{type(exc).__name__}: {exc}")


def _timed(func):
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _demo(args) -> int:
    import numpy as np
    from sklearn.datasets import make_classification

    from ._cluster import embedded_cluster

    n_samples = 4_000 if args.small else 12_000
    grid = (
        {"n_estimators": [20, 50], "max_depth": [3, None]} if args.small
        else {"n_estimators": [50, 100], "max_depth": [3, 8, None]}
    )
    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=8,
                               random_state=0)
    print(f"distsk demo: {n_samples} samples x 20 features; every result is checked "
          "against plain scikit-learn.", flush=True)
    demo = _Demo()
    state: dict = {}

    def local_forest(step):
        from . import DistributedEstimator

        plain, t_plain = _timed(lambda: _demo_forest().fit(X, y))
        est, t_est = _timed(lambda: DistributedEstimator(_demo_forest()).fit(X, y))
        state.update(plain_forest=plain, t_plain_forest=t_plain)
        same = np.array_equal(est.predict(X), plain.predict(X))
        if not same:
            return demo.fail(step, "predictions differ from plain sklearn's forest")
        demo.line(step, t_est, t_plain, "identical predictions", est.plan_.reason)

    def cluster_forest(step, client):
        from . import DistributedEstimator

        if "plain_forest" not in state:  # step (a) failed; (b) still needs its reference
            state["plain_forest"], state["t_plain_forest"] = _timed(
                lambda: _demo_forest().fit(X, y))
        est, t_est = _timed(lambda: DistributedEstimator(
            _demo_forest(), backend="dask", client=client).fit(X, y))
        plain = state["plain_forest"]
        if not np.array_equal(est.predict(X), plain.predict(X)):
            return demo.fail(step, "predictions differ from plain sklearn's forest")
        demo.line(step, t_est, state["t_plain_forest"], "identical predictions",
                  est.plan_.reason)

    def lazy_fit(step, client, Xd, yd, *, module, extra, make, minimum, plain):
        """Fit ``make()`` on dask data over the gather limit; compare with a local fit."""
        from . import DistributedEstimator

        if not _installed(module):
            print(f"{step:<32} skipped: install distsk[{extra}]", flush=True)
            return
        reference, t_plain = _timed(lambda: make().fit(X, y))
        est, t_est = _timed(lambda: DistributedEstimator(
            make(), max_gather_bytes=0, client=client).fit(Xd, yd))
        agree = float(np.mean(est.predict(X) == reference.predict(X)))
        if agree < minimum:
            return demo.fail(step, f"predictions agree with {plain}'s on only {agree:.2%} "
                             f"of rows (at least {minimum:.0%} expected)")
        demo.line(step, t_est, t_plain, f"{agree:.2%} same predictions", est.plan_.reason,
                  plain=plain)

    def lazy_logistic(step, client, Xd, yd):
        from sklearn.linear_model import LogisticRegression

        lazy_fit(step, client, Xd, yd, module="dask_ml", extra="dask-ml",
                 make=LogisticRegression, minimum=MIN_AGREEMENT_DASK_ML, plain="sklearn")

    def lazy_xgboost(step, client, Xd, yd):
        def booster():
            import xgboost

            return xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0)

        lazy_fit(step, client, Xd, yd, module="xgboost", extra="xgboost",
                 make=booster, minimum=MIN_AGREEMENT_XGBOOST, plain="xgboost")

    def forest_search(step, client):
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import GridSearchCV

        from . import DistributedSearchCV

        est = RandomForestClassifier(random_state=0)
        plain, t_plain = _timed(lambda: GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(X, y))
        search, t_search = _timed(lambda: DistributedSearchCV(
            est, grid, cv=3, backend="dask", client=client).fit(X, y))
        ours, theirs = search.cv_results_, plain.cv_results_
        if ours["params"] != theirs["params"] or not np.array_equal(
            ours["mean_test_score"], theirs["mean_test_score"]
        ):
            return demo.fail(step, "mean_test_score differs from GridSearchCV's")
        n = len(ours["params"]) * search.n_splits_
        demo.line(step, t_search, t_plain, f"same scores, {n} fits", search.plan_.reason)

    demo.run("(a) forest, this machine", local_forest)
    try:
        with warnings.catch_warnings(), embedded_cluster(
            n_workers=2, threads_per_worker=1, dashboard=args.dashboard
        ) as client:
            import dask.array as da

            # dask-ml sets a dask option under its deprecated name; not the user's concern.
            warnings.filterwarnings("ignore", message=".*fuse_ave_width", category=FutureWarning)
            info = f"embedded LocalCluster: 2 workers x 1 thread on {client.scheduler.address}"
            if args.dashboard:
                info += f"; dashboard at {client.dashboard_link}"
            print(info, flush=True)
            Xd = da.from_array(X, chunks=(n_samples // 4, -1))
            yd = da.from_array(y, chunks=n_samples // 4)
            demo.run("(b) forest, cluster", cluster_forest, client)
            demo.run("(c) LogisticRegression, dask", lazy_logistic, client, Xd, yd)
            demo.run("(d) XGBoost, dask", lazy_xgboost, client, Xd, yd)
            demo.run("(e) forest grid search", forest_search, client)
    except Exception as exc:  # the cluster itself did not start or stop cleanly
        traceback.print_exc()
        demo.fail("cluster", f"{type(exc).__name__}: {exc}")
    if demo.failures:
        print(f"\ndistsk demo FAILED: {len(demo.failures)} step(s) did not match plain "
              "scikit-learn or did not run:", file=sys.stderr)
        for failure in demo.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("\nAll steps match plain scikit-learn.")
    return 0


def _demo_forest():
    """The demo's forest: 200 trees on all cores, as a user would write it."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=0)


# ---------------------------------------------------------------------------- bench
def _bench(extra: list[str]) -> int:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    if not script.is_file():
        print(
            f"distsk bench runs benchmarks/run.py, which lives in the distsk source checkout "
            f"(not found at {script}; distsk is installed from a wheel). Clone the "
            "repository and run `python benchmarks/run.py --help` there.",
            file=sys.stderr,
        )
        return 2
    return subprocess.call([sys.executable, str(script), *extra])


# ---------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distsk",
        description="Drop-in scikit-learn meta-estimators that run on every core and every "
        "Dask worker.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{info,demo,bench}")
    sub.add_parser("info", help="versions and the compute distsk would plan for")
    demo = sub.add_parser(
        "demo", help="sklearn + joblib + Dask on an embedded loopback cluster",
        description="Fit forests, a logistic regression, XGBoost and a grid search with "
        "distsk and with plain scikit-learn, on this machine and on an embedded 2-worker "
        "loopback Dask cluster, and check that the results agree.",
    )
    demo.add_argument("--small", action="store_true", help="smaller data (about a minute)")
    demo.add_argument("--dashboard", action="store_true",
                      help="serve the cluster's Dask dashboard on 127.0.0.1")
    # add_help=False: `distsk bench --help` reaches benchmarks/run.py.
    sub.add_parser("bench", add_help=False,
                   help="run benchmarks/run.py (source checkout) with the given arguments")
    return p


def main(argv=None) -> int:
    """Entry point of the ``distsk`` command; returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        return _bench(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "info":
        return _info(args)
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
