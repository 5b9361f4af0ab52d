"""The ``distsk`` command: ``info``, ``demo``, ``bench`` and ``checkpoint``.

``info`` prints versions and the compute profile; ``demo`` tells the classic
"sklearn + joblib + Dask" story on an embedded loopback cluster, checking each result
against plain scikit-learn; ``bench`` runs ``benchmarks/run.py`` from a source checkout;
``checkpoint`` reads a checkpoint file as data and can drop its unreadable rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass, field
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
    from ._cluster.client import resolve_client
    from ._decide.profile import profile_compute

    optional = {label for label, _, opt in _PACKAGES if opt}
    for name, ver in collect_versions():
        if ver is None:
            extra = f"  (pip install {name}: the distsk[{name}] extra)" if name in optional else ""
            ver = f"not installed{extra}"
        print(f"{name:<14}{ver}")
    print(f"{'compute':<14}{profile_compute(resolve_client(None)).describe()}")
    return 0


# ---------------------------------------------------------------------- checkpoint
def _checkpoint(args) -> int:
    from ._search.checkpoint import Checkpoint
    from .exceptions import CheckpointError

    if not os.path.exists(args.path):
        print(f"distsk checkpoint: no file {args.path!r}", file=sys.stderr)
        return 2
    try:
        store = Checkpoint(args.path)
        bad = store.unreadable()
        total = len(store)
    except CheckpointError as exc:
        print(f"distsk checkpoint: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"{args.path}: {total - len(bad)} results, {len(bad)} unreadable rows")
        if bad and args.drop_unreadable:
            store.drop(bad)
            print(f"dropped {len(bad)} unreadable rows; their fits run again on resume")
        return 1 if bad and not args.drop_unreadable else 0
    finally:
        store.close()


# ---------------------------------------------------------------------------- demo
#: Widest line the demo prints: a terminal shows every line without wrapping.
WIDTH = 100


@dataclass
class _Step:
    """What one demo step measured, and the sentences that explain its times."""

    title: str
    distsk_s: float
    plain_s: float
    reference: str  # what the result is compared with: "sklearn" or "xgboost"
    result: str  # the comparison, stated exactly
    notes: list[str] = field(default_factory=list)


class _Demo:
    """Runs the demo steps, prints a table row and its notes each, keeps the outcomes."""

    def __init__(self):
        self.passed: list[_Step] = []
        self.failures: list[str] = []

    def header(self):
        print(f"\n{'step':<30}{'distsk':>9}{'plain':>9}  {'compared with':<15}result")

    def show(self, step: _Step):
        self.passed.append(step)
        print(f"{step.title:<30}{step.distsk_s:>7.2f} s{step.plain_s:>7.2f} s  "
              f"{step.reference:<15}{step.result}", flush=True)
        for note in step.notes:
            for line in textwrap.wrap(note, WIDTH - 4):
                print(f"    {line}")

    def fail(self, title, message):
        self.failures.append(f"{title}: {message}")
        print(f"{title:<30}FAILED: {message}", flush=True)

    def skip(self, title, message):
        print(f"{title:<30}skipped: {message}", flush=True)

    def run(self, title, func, *args):
        try:
            step = func(title, *args)
        except Exception as exc:
            traceback.print_exc()
            return self.fail(title, f"{type(exc).__name__}: {exc}")
        if step is not None:
            self.show(step)


def _timed(func):
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _agreement(ours, theirs) -> tuple[float, str]:
    """Share of equal predictions, and it said exactly: "11,987 of 12,000 equal (99.89 %)"."""
    import numpy as np

    same, n = int(np.sum(ours == theirs)), len(theirs)
    return same / n, f"{same:,} of {n:,} equal ({100 * same / n:.2f} %)"


def _placed(client, array, n_blocks):
    """``array`` as a dask array of ``n_blocks`` row blocks, block i on worker i % 2.

    Fixed placement makes the xgboost.dask step give the same model every run (each
    worker sketches its own blocks); it also keeps the data out of every task graph.
    """
    import dask.array as da

    workers = [a for a, _ in sorted(client.scheduler_info()["workers"].items(),
                                    key=lambda item: str(item[1]["name"]))]
    bounds = [len(array) * i // n_blocks for i in range(n_blocks + 1)]
    blocks = []
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        part = array[lo:hi]
        future = client.scatter(part, workers=[workers[i % len(workers)]])
        blocks.append(da.from_delayed(future, shape=part.shape, dtype=part.dtype))
    return da.concatenate(blocks)


def _redirect_stderr(path):
    """In a worker of the demo's own cluster: its stderr (native libraries' chatter,
    such as xgboost's "got rank" lines, and its logs) goes to ``path``."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def _demo(args) -> int:
    from sklearn.datasets import make_classification

    from ._cluster.client import embedded_cluster
    from ._decide.profile import local_cores

    n_samples = 4_000 if args.small else 12_000
    grid = (
        {"n_estimators": [20, 50], "max_depth": [3, None]} if args.small
        else {"n_estimators": [50, 100], "max_depth": [3, 8, None]}
    )
    cores = local_cores()
    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=8,
                               random_state=0)
    print(f"distsk demo: {n_samples:,} samples x 20 features, {cores} cores on this machine.")
    print("Each step fits with distsk and with the plain library (timed in seconds) and "
          "compares the results.", flush=True)
    demo = _Demo()
    steps = _DemoSteps(demo, X, y, grid, cores)
    demo.header()
    demo.run("(a) forest, this machine", steps.local_forest)
    fd, worker_log = tempfile.mkstemp(prefix="distsk-demo-workers-", suffix=".log")
    os.close(fd)
    try:
        with embedded_cluster(
            n_workers=2, threads_per_worker=1, dashboard=args.dashboard, quiet=True
        ) as client:
            client.run(_redirect_stderr, worker_log)
            info = "embedded LocalCluster on 127.0.0.1: 2 worker processes x 1 thread"
            if args.dashboard:
                info += f"; dashboard at {client.dashboard_link}"
            print(info, flush=True)
            Xd = _placed(client, X, 4)
            yd = _placed(client, y, 4)
            demo.run("(b) forest, cluster", steps.cluster_forest, client)
            demo.run("(c) LogisticRegression, dask", steps.lazy_logistic, client, Xd, yd)
            demo.run("(d) XGBoost, dask", steps.lazy_xgboost, client, Xd, yd)
            demo.run("(e) forest grid search", steps.forest_search, client)
    except Exception as exc:  # the cluster itself did not start or stop cleanly
        traceback.print_exc()
        demo.fail("cluster", f"{type(exc).__name__}: {exc}")
    if demo.failures:
        print(f"\ndistsk demo FAILED: {len(demo.failures)} step(s) did not match their "
              f"reference or did not run (worker output: {worker_log}):", file=sys.stderr)
        for failure in demo.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    os.unlink(worker_log)
    identical = [s.title[:3] for s in demo.passed if s.result.startswith("identical")]
    print(f"\nAll {len(demo.passed)} steps passed. {', '.join(identical)}: identical to "
          "plain scikit-learn.")
    for label, said, reference in steps.state.get("agreement", []):
        print(f"{label}: predictions {said} with plain {reference}'s.")
    return 0


class _DemoSteps:
    """The demo's steps, each fitting with distsk and with the plain library on the
    same data (``X``, ``y``) and comparing the results; ``state`` keeps the plain
    forest (fit once, shared by two steps) and the agreements to report."""

    def __init__(self, demo, X, y, grid, cores):
        self.demo, self.X, self.y, self.grid, self.cores = demo, X, y, grid, cores
        self.state: dict = {}
        self.same_cores = (
            f"The cluster's 2 worker processes run on this machine's {cores} cores: a "
            "loopback cluster adds no compute, only task and transfer costs, so it cannot "
            "beat this machine's own cores; on a real cluster the same code uses every "
            "worker."
        )

    @staticmethod
    def _same(a, b) -> bool:
        import numpy as np

        return bool(np.array_equal(a, b))

    def plain_forest(self):
        if "forest" not in self.state:
            self.state["forest"] = _timed(lambda: _demo_forest().fit(self.X, self.y))
        return self.state["forest"]

    def local_forest(self, title):
        from . import DistributedEstimator

        plain, t_plain = self.plain_forest()
        est, t_est = _timed(lambda: DistributedEstimator(_demo_forest()).fit(self.X, self.y))
        if not self._same(est.predict(self.X), plain.predict(self.X)):
            return self.demo.fail(title, "predictions differ from plain sklearn's forest")
        how = (
            f"fits it in this process with the forest's own n_jobs=-1 on the {self.cores} cores: "
            "the same work as plain sklearn, so the two times differ only by noise."
            if est.plan_.strategy == "in-process"
            else f"plans {est.plan_.executor!r} ({est.plan_.strategy})."
        )
        return _Step(title, t_est, t_plain, "sklearn", "identical predictions", [
            "RandomForestClassifier(n_estimators=200, n_jobs=-1) on in-memory numpy data, "
            f"no cluster: distsk {how}",
        ])

    def cluster_forest(self, title, client):
        from . import DistributedEstimator

        plain, t_plain = self.plain_forest()
        est, t_est = _timed(lambda: DistributedEstimator(
            _demo_forest(), backend="dask", client=client).fit(self.X, self.y))
        if not self._same(est.predict(self.X), plain.predict(self.X)):
            return self.demo.fail(title, "predictions differ from plain sklearn's forest")
        return _Step(title, t_est, t_plain, "sklearn", "identical predictions", [
            f"Forced backend='dask': the 200 trees are split into {est.plan_.n_jobs} "
            "sub-forests on the workers and merged into the exact forest sklearn fits.",
            self.same_cores,
        ])

    def lazy_fit(self, title, client, Xd, yd, *, module, extra, make, minimum, reference, why):
        """Fit ``make()`` on dask data over a forced gather limit of 0 bytes."""
        from . import DistributedEstimator
        from ._decide.profile import format_bytes

        if not _installed(module):
            return self.demo.skip(title, f"pip install {extra} for this step "
                             f"(the distsk[{extra}] extra)")
        plain, t_plain = _timed(lambda: make().fit(self.X, self.y))
        est, t_est = _timed(lambda: DistributedEstimator(
            make(), max_gather_bytes=0, client=client).fit(Xd, yd))
        share, said = _agreement(est.predict(self.X), plain.predict(self.X))
        if share < minimum:
            return self.demo.fail(title, f"predictions {said} with plain {reference}'s; at least "
                             f"{minimum:.0%} expected")
        self.state.setdefault("agreement", []).append((title[:3], said, reference))
        return _Step(title, t_est, t_plain, reference, said, [
            f"Forced max_gather_bytes=0: the {format_bytes(Xd.nbytes)} dask array counts as "
            f"larger than memory, so distsk trains with {est.plan_.executor} on the workers "
            f"instead of gathering it. {why} The path is for data that does not fit in "
            "memory: on data this small it pays task and transfer costs for nothing.",
        ])

    def lazy_logistic(self, title, client, Xd, yd):
        from sklearn.linear_model import LogisticRegression

        return self.lazy_fit(
            title, client, Xd, yd, module="dask_ml", extra="dask-ml", make=LogisticRegression,
            minimum=MIN_AGREEMENT_DASK_ML, reference="sklearn",
            why="Every L-BFGS iteration is a pass over the blocks on the cluster; the "
            "solver stops within its tolerance of sklearn's optimum, so a few predictions "
            "near the boundary can differ.",
        )

    def lazy_xgboost(self, title, client, Xd, yd):
        def booster():
            import xgboost

            return xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0)

        return self.lazy_fit(
            title, client, Xd, yd, module="xgboost", extra="xgboost", make=booster,
            minimum=MIN_AGREEMENT_XGBOOST, reference="xgboost",
            why="Compared with plain xgboost, not sklearn: xgboost.dask merges histogram "
            "bins sketched on each worker, so some splits differ slightly by design.",
        )

    def forest_search(self, title, client):
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import GridSearchCV

        from . import DistributedSearchCV

        est = RandomForestClassifier(random_state=0)
        plain, t_plain = _timed(lambda: GridSearchCV(est, self.grid, cv=3, n_jobs=-1).fit(self.X, self.y))
        search, t_search = _timed(lambda: DistributedSearchCV(
            est, self.grid, cv=3, backend="dask", client=client).fit(self.X, self.y))
        ours, theirs = search.cv_results_, plain.cv_results_
        if ours["params"] != theirs["params"] or not self._same(
            ours["mean_test_score"], theirs["mean_test_score"]
        ):
            return self.demo.fail(title, "mean_test_score differs from GridSearchCV's")
        n_candidates = len(ours["params"])
        nominal = n_candidates * search.n_splits_
        sizes = sorted(self.grid["n_estimators"])
        performed = search.n_fits_performed_
        how = (
            f": for each max_depth and fold one forest of {sizes[-1]} trees is fit, and "
            f"smaller n_estimators are scored from its first trees (shared forests)"
            if performed == len(self.grid["max_depth"]) * search.n_splits_ else ""
        )
        return _Step(title, t_search, t_plain, "sklearn", "identical cv_results_ scores", [
            f"{n_candidates} candidates x {search.n_splits_} folds = {nominal} fits nominal, "
            f"{performed} performed{how}. GridSearchCV performs all {nominal}. Same cores as "
            "(b): the time saved is the fits not repeated.",
        ])


def _demo_forest():
    """The demo's forest: 200 trees on all cores, as a user would write it."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=0)


# ---------------------------------------------------------------------------- bench
def _find_benchmarks(package_root: Path, cwd: Path) -> Path | None:
    """benchmarks/run.py of the source checkout distsk runs from (an editable install),
    or of the checkout that holds ``cwd`` (distsk installed from it as a wheel)."""
    cwd = cwd.resolve()
    candidates = [package_root, cwd, *cwd.parents]
    for root in candidates:
        script = root / "benchmarks" / "run.py"
        if script.is_file() and (root / "distsk" / "cli.py").is_file():
            return script
    return None


def _bench(extra: list[str], *, package_root: Path | None = None,
           cwd: Path | None = None) -> int:
    if package_root is None:
        package_root = Path(__file__).resolve().parents[1]
    script = _find_benchmarks(package_root, Path.cwd() if cwd is None else cwd)
    if script is None:
        message = (
            "distsk bench runs benchmarks/run.py, which is part of the distsk source "
            "checkout, not of the installed package. Run it from inside the clone you "
            "installed distsk from: `cd <clone> && .venv/bin/distsk bench --help` "
            "(the same as `.venv/bin/python benchmarks/run.py --help` there)."
        )
        print("\n".join(textwrap.wrap(message, WIDTH, break_on_hyphens=False,
                                      break_long_words=False)), file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *extra])


# ---------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distsk",
        description="Drop-in scikit-learn meta-estimators that run on every core and every "
        "Dask worker.",
    )
    sub = p.add_subparsers(dest="command", required=True,
                           metavar="{info,demo,bench,checkpoint}")
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
    ck = sub.add_parser(
        "checkpoint", help="check a search's checkpoint file (and drop unreadable rows)",
        description="Read every stored result of a checkpoint file as data (nothing in "
        "it is run) and report the results and the rows that are not distsk result data.")
    ck.add_argument("path", help="the checkpoint file (SQLite)")
    ck.add_argument("--drop-unreadable", action="store_true",
                    help="delete the rows that are not result data (their fits run again)")
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
    if args.command == "checkpoint":
        return _checkpoint(args)
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
