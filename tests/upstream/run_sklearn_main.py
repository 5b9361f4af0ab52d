"""Run a scikit-learn checkout's search tests against distsk's classes (or sklearn's own).

    python tests/upstream/run_sklearn_main.py PATH/sklearn/model_selection/tests \
        [--classes distsk|sklearn] [--file test_search.py ...] [--backend auto] \
        [--json OUT.json] [-- PYTEST ARGS, e.g. --timeout=300]

PATH is a scikit-learn source tree (for instance its main branch); this script fetches
nothing. It copies ``test_search.py`` and ``test_successive_halving.py`` from there into a
temporary folder and runs them, each in a pytest process of its own with an ini of its
own (outside this project's pytest configuration; sklearn's conftest is loaded as a
plugin, so its fixtures and markers apply, and pytest-randomly is off), against the
scikit-learn that is *installed* (no build of the checkout is needed).

``--classes distsk`` (the default) rebinds the names ``GridSearchCV``,
``RandomizedSearchCV``, ``HalvingGridSearchCV`` and ``HalvingRandomSearchCV`` in each copy,
right after its imports, to distsk's classes: the halving names are
``DistributedHalvingGridSearchCV`` / ``DistributedHalvingRandomSearchCV`` themselves (as
``tests/test_halving_sklearn_suite.py`` does); the other two are small functions that
return a ``DistributedSearchCV`` with ``param_grid=`` or ``param_distributions=`` (the one
class replaces both). ``--classes sklearn`` runs the same copies unchanged: the baseline
that tells a distsk defect from a test that needs sklearn's newer code.

One shim applies to both: where the installed scikit-learn still keeps the halving searches
experimental (1.9 and earlier), each copy first imports
``sklearn.experimental.enable_halving_search_cv``, so that a checkout whose tests import
them directly (main) can be imported at all. On a scikit-learn that exports them, it
does nothing.

As in ``tests/test_halving_sklearn_suite.py``, ``test_cv_results`` and
``test_base_estimator_inputs`` of the halving file run distsk with ``backend="sequential"``
(they record every fit, or draw every score from one RandomState, in the test's own
process); ``--backend`` sets distsk's default backend for all other tests (``dask``
starts a LocalCluster of two one-thread worker processes on 127.0.0.1 for the run).

Prints passed / failed / skipped per file and the failed test ids; ``--json PATH`` writes
them, with the versions and a hash of each copied file.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(HERE) not in sys.path:  # run as a script or imported
    sys.path.insert(0, str(HERE))

from run_sklearn_suites import junit_counts  # noqa: E402

FILES = ("test_search.py", "test_successive_halving.py")
# Test functions (by name, any file) whose fits must run in the test's process.
IN_PROCESS = ("test_cv_results", "test_base_estimator_inputs")

_PROLOGUE = '''\
try:  # run_sklearn_main.py: a scikit-learn that still keeps them experimental
    from sklearn.model_selection import HalvingGridSearchCV as _distsk_probe  # noqa
except ImportError:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
'''
_REBIND = (
    "from _distsk_names import (  # run_sklearn_main.py: distsk's classes, sklearn's names\n"
    "    GridSearchCV, HalvingGridSearchCV, HalvingRandomSearchCV, RandomizedSearchCV)\n"
)

_NAMES_MODULE = '''\
"""distsk's classes under scikit-learn's names (written by run_sklearn_main.py)."""
import contextlib
import os

from distsk import DistributedHalvingGridSearchCV as HalvingGridSearchCV
from distsk import DistributedHalvingRandomSearchCV as HalvingRandomSearchCV
from distsk import DistributedSearchCV


def GridSearchCV(estimator, param_grid, **kwargs):
    return DistributedSearchCV(estimator, param_grid=param_grid, **kwargs)


def RandomizedSearchCV(estimator, param_distributions, **kwargs):
    return DistributedSearchCV(
        estimator, param_distributions=param_distributions, **kwargs)


_CLASSES = (DistributedSearchCV, HalvingGridSearchCV, HalvingRandomSearchCV)


def _set_backend(backend):
    # The default of the keyword, so that objects a test builds (and clones) get it.
    for cls in _CLASSES:
        cls.__init__.__kwdefaults__["backend"] = backend


@contextlib.contextmanager
def backend(name):
    before = DistributedSearchCV.__init__.__kwdefaults__["backend"]
    _set_backend(name)
    try:
        yield
    finally:
        _set_backend(before)


_set_backend(os.environ.get("DISTSK_MAIN_BACKEND", "auto"))
'''

_CONFTEST = '''\
"""Written by run_sklearn_main.py: the tests that must run distsk in-process."""
import os
import sys

import pytest

_IN_PROCESS = set(filter(None, os.environ.get("DISTSK_MAIN_IN_PROCESS", "").split(",")))
_state = {}


def pytest_configure(config):
    # backend="dask" needs a client: two one-thread worker processes on loopback, as
    # run_sklearn_suites.py's dask engines use, the default client for the session.
    if os.environ.get("DISTSK_MAIN_BACKEND") == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, worker_dashboard_address=None)
        _state["client"] = Client(cluster, set_as_default=True, timeout=30)
        _state["client"].wait_for_workers(2, timeout=30)
        _state["cluster"] = cluster


def pytest_unconfigure(config):
    for name in ("client", "cluster"):
        if name in _state:
            _state.pop(name).close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    names = sys.modules.get("_distsk_names")
    if names is None or item.originalname not in _IN_PROCESS:
        return (yield)
    with names.backend("sequential"):
        return (yield)
'''


def _after_imports(source: str) -> int:
    """Line number after the module's leading block of imports."""
    end = 0
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            end = node.end_lineno
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        else:
            break
    return end


def rewrite(source: str, classes: str) -> str:
    """The copy that is run: the prologue, and distsk's names when asked."""
    lines = source.splitlines(keepends=True)
    if classes == "distsk":
        at = _after_imports(source)
        lines[at:at] = [_REBIND]
    return _PROLOGUE + "".join(lines)


def _versions() -> dict:
    import sklearn

    import distsk

    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    return {"sklearn_installed": sklearn.__version__, "distsk": distsk.__version__,
            "distsk_commit": head, "python": sys.version.split()[0]}


def run(tests_dir: Path, name: str, classes: str, backend: str, extra: list[str]) -> dict:
    """One pytest process on the copy of ``tests_dir/name``: counts and failed ids."""
    source = (tests_dir / name).read_text()
    with tempfile.TemporaryDirectory(prefix="distsk-sklearn-main-") as tmp:
        tmp = Path(tmp)
        (tmp / name).write_text(rewrite(source, classes))
        (tmp / "_distsk_names.py").write_text(_NAMES_MODULE)
        (tmp / "conftest.py").write_text(_CONFTEST)
        # An ini of our own: this project's pyproject.toml (--strict-markers) stays out.
        ini = tmp / "pytest.ini"
        ini.write_text("[pytest]\naddopts = -p no:cacheprovider -p no:randomly\n")
        junit = tmp / "junit.xml"
        env = dict(os.environ, DISTSK_MAIN_BACKEND=backend,
                   DISTSK_MAIN_IN_PROCESS=",".join(IN_PROCESS) if classes == "distsk" else "",
                   PYTHONPATH=os.pathsep.join(
                       filter(None, [str(tmp), str(ROOT), os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(tmp),
               "-p", "sklearn.conftest", str(tmp / name), "-q", "-rfE",
               "--junitxml", str(junit), *extra]
        proc = subprocess.run(cmd, env=env, cwd=tmp)
        counts = junit_counts(junit)
    return {"file": name, "classes": classes, "backend": backend if classes == "distsk"
            else None, "returncode": proc.returncode,
            "sha256": hashlib.sha256(source.encode()).hexdigest(), **counts}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("tests_dir", type=Path,
                        help="a scikit-learn checkout's sklearn/model_selection/tests")
    parser.add_argument("--classes", choices=("distsk", "sklearn"), default="distsk",
                        help="whose search classes the tests run (default: distsk)")
    parser.add_argument("--file", action="append", choices=FILES,
                        help=f"repeatable; default: both of {FILES}")
    parser.add_argument("--backend", default="auto",
                        help="distsk's default backend= in these tests (default: auto)")
    parser.add_argument("--json", help="write the results here")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    missing = [n for n in args.file or FILES if not (args.tests_dir / n).is_file()]
    if missing:
        parser.error(f"{args.tests_dir} has no {', '.join(missing)}; expected a "
                     "checkout's sklearn/model_selection/tests folder")
    versions = _versions()
    results = [run(args.tests_dir.resolve(), name, args.classes, args.backend, extra)
               for name in args.file or FILES]
    print(f"scikit-learn {versions['sklearn_installed']} installed, distsk "
          f"{versions['distsk']} ({versions['distsk_commit']}), tests from {args.tests_dir}")
    for r in results:
        print(f"{r['classes']:7} {r['file']}: {r['passed']} passed, {r['failed']} failed, "
              f"{r['errors']} errors, {r['skipped']} skipped")
        for test_id in r["failed_ids"]:
            print(f"    FAILED {test_id}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"versions": versions, "tests_dir": str(args.tests_dir), "results": results},
            indent=2))
    return 0 if all(r["failed"] == r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
