"""Run scikit-learn's own test files with a joblib backend active for every test.

    python tests/upstream/run_sklearn_suites.py --engine distsk-dask \
        [--suite sklearn.model_selection.tests.test_validation ...] [-- PYTEST ARGS]

Each engine runs in a pytest process of its own (``distsk_upstream_plugin.py`` wraps
every test in ``joblib.parallel_config``; see there for the engines), on the test
modules installed with scikit-learn's wheel, outside this project's pytest
configuration (sklearn's own conftest applies). Prints passed / failed / skipped per
engine and suite, and the failed test ids; ``--json PATH`` writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_SUITES = (
    "sklearn.model_selection.tests.test_validation",
    "sklearn.model_selection.tests.test_search",
)


def _sklearn_dir() -> Path:
    import sklearn

    return Path(sklearn.__file__).resolve().parent


def run(engine: str, suite: str, extra: list[str]) -> dict:
    """One pytest process: ``suite`` under ``engine``; its counts and failed ids."""
    with tempfile.TemporaryDirectory(prefix="distsk-upstream-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        # An ini of our own: sklearn's installed tests would otherwise find this
        # project's pyproject.toml (the venv lives under it) and its --strict-markers.
        ini.write_text("[pytest]\naddopts = -p no:cacheprovider\n")
        junit = Path(tmp) / "junit.xml"
        env = dict(os.environ, DISTSK_UPSTREAM_ENGINE=engine,
                   PYTHONPATH=os.pathsep.join(
                       filter(None, [str(HERE), str(ROOT), os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "pytest", "-c", str(ini),
               "--rootdir", str(_sklearn_dir()), "-p", "distsk_upstream_plugin",
               "--pyargs", suite, "-q", "-rfE", "--junitxml", str(junit), *extra]
        proc = subprocess.run(cmd, env=env, cwd=tmp)
        counts = junit_counts(junit)
    return {"engine": engine, "suite": suite, "returncode": proc.returncode, **counts}


def junit_counts(junit: Path) -> dict:
    """passed / failed / errors / skipped of a pytest JUnit file, and ``failed_ids``
    (failures and errors); all zero if pytest wrote none."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed: list[str] = []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None:
                counts["failed"] += 1
                failed.append(name)
            elif case.find("error") is not None:
                counts["errors"] += 1
                failed.append(name)
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    return {**counts, "failed_ids": failed}


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE))
    from distsk_upstream_plugin import ENGINES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", choices=ENGINES,
                        help="repeatable; default: distsk-dask")
    parser.add_argument("--suite", action="append",
                        help=f"a test module (dotted); repeatable; default: {DEFAULT_SUITES}")
    parser.add_argument("--json", help="write the results here")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    results = [run(engine, suite, extra)
               for engine in args.engine or ["distsk-dask"]
               for suite in args.suite or DEFAULT_SUITES]
    for r in results:
        print(f"{r['engine']:18} {r['suite']}: {r['passed']} passed, {r['failed']} failed, "
              f"{r['errors']} errors, {r['skipped']} skipped")
        for name in r["failed_ids"]:
            print(f"    FAILED {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["failed"] == r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
