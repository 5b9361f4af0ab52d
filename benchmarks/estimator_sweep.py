"""check_estimator over every estimator scikit-learn lists, each wrapped in distsk (#21).

    python benchmarks/estimator_sweep.py [--only Lasso,TSNE] [--plain] [--out DIR]

Not a timing benchmark: a conformance sweep. Every instance scikit-learn's own common
tests build (``sklearn.utils._test_common.instance_generator._tested_estimators``: each
class ``all_estimators()`` lists, constructed with sklearn's ``INIT_PARAMS`` where it has
them -- one instance per parameter set -- and with defaults otherwise; FrozenEstimator is
skipped there) is wrapped in a subclass of ``DistributedEstimator`` named after the inner
class, so the checks' name-based logic sees that name, and run through
``check_estimator(..., on_fail=None)`` in this process, without a cluster.

Each instance gets the expected failures sklearn gives the plain estimator
(``_get_expected_failed_checks``). An instance passes when no check has the status
"failed". The denominator is the number of instances, 228 with scikit-learn 1.9.1.

sklearn runs a few checks on the plain estimator with other parameters
(``PER_ESTIMATOR_CHECK_PARAMS``, keyed by the estimator's type, e.g. StandardScaler's
sample-weight checks on sparse data with ``with_mean=False``). The wrapper's type is not
that key, so the sweep registers the same parameter sets for the wrapper type, set
through the wrapper as ``estimator__<name>`` (nested ``set_params``, as for any
meta-estimator); ``--no-check-params`` leaves them out.

The checks seed an estimator through ``set_random_state``, which sets only a top-level
``random_state`` parameter; the wrapper has none (its ``estimator__random_state`` is the
inner one's), so the sweep seeds the inner estimator with 0 before wrapping it.

Failures that come from a check reaching into the estimator (``ARTEFACTS``, explained
in docs/internals.rst, "The estimator sweep", and shown by tests/test_sweep_artefacts.py)
are marked as such; any other failure is reported as unexplained.

``--plain`` runs the unwrapped estimators the same way, for comparison.

Writes ``estimator_sweep.md`` and ``estimator_sweep.json`` to ``--out`` (default
benchmarks/results; ``estimator_sweep_plain.*`` with ``--plain``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent

_ALPHA = "sets regressor.alpha = 0.01 by attribute"
_N_COMPONENTS = "sets n_components = 1 when hasattr(est, 'n_components')"
_METRIC = "gives distances only when getattr(est, 'metric') == 'precomputed'"
_CV = "sets matched splits only when 'cv' in est.get_params()"
_SET_PARAMS = "calls est.set_params(<inner parameter>=...) by class name"
#: Failures that come from the check reaching into the estimator, not from distsk:
#: docs/internals.rst, "The estimator sweep", each shown by tests/test_sweep_artefacts.py.
#: A failure not listed here is reported as unexplained.
ARTEFACTS: dict[tuple[str, str], str] = {
    **{(name, "check_regressors_train"): _ALPHA for name in (
        "Lasso", "ElasticNet", "LassoLars", "MultiTaskElasticNet", "MultiTaskLasso",
        "QuantileRegressor")},
    **{(name, check): _METRIC for name, checks in (
        ("KNeighborsClassifier", ("check_classifiers_train",)),
        ("KNeighborsRegressor", ("check_regressors_train",)))
       for check in (*checks, "check_estimator_sparse_array", "check_estimator_sparse_matrix")},
    ("LocallyLinearEmbedding", "check_fit2d_1feature"): _N_COMPONENTS,
    ("TSNE", "check_fit2d_1feature"): _N_COMPONENTS,
    ("NMF", "check_methods_subset_invariance"): _N_COMPONENTS,
    ("OPTICS", "check_fit2d_1sample"): _SET_PARAMS,
    ("TSNE", "check_fit2d_1sample"): _SET_PARAMS,
    ("StandardScaler", "check_estimator_sparse_array"): _SET_PARAMS,
    ("StandardScaler", "check_estimator_sparse_matrix"): _SET_PARAMS,
    **{(name, f"check_sample_weight_equivalence_on_{kind}_data"): _CV
       for name in ("CalibratedClassifierCV", "LassoCV", "LogisticRegressionCV",
                    "MultiTaskLassoCV", "RidgeCV", "RidgeClassifierCV")
       for kind in ("dense", "sparse")},
}


def _instances():
    from sklearn.utils._test_common.instance_generator import _tested_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(_tested_estimators())


_WRAPPERS: dict[str, type] = {}


def wrapper_class(name: str) -> type:
    """A DistributedEstimator subclass called ``name``, importable from this module
    (the pickling checks look the class up by module and name)."""
    from distsk import DistributedEstimator

    cls = _WRAPPERS.get(name)
    if cls is None:
        cls = type(name, (DistributedEstimator,), {"__module__": __name__})
        _WRAPPERS[name] = cls
        globals()[name] = cls
    return cls


def _register_check_params(inner, wrapper_type):
    from sklearn.utils._test_common import instance_generator as ig

    params = ig.PER_ESTIMATOR_CHECK_PARAMS.get(type(inner))
    if not params:
        return

    def nested(p):
        return {f"estimator__{k}": v for k, v in p.items()}

    ig.PER_ESTIMATOR_CHECK_PARAMS[wrapper_type] = {
        check: [nested(p) for p in sets] if isinstance(sets, list) else nested(sets)
        for check, sets in params.items()
    }


def run_one(inner, *, plain: bool, check_params: bool) -> dict:
    from sklearn.base import clone
    from sklearn.utils._test_common.instance_generator import _get_expected_failed_checks
    from sklearn.utils._testing import set_random_state
    from sklearn.utils.estimator_checks import check_estimator

    name = type(inner).__name__
    expected = dict(_get_expected_failed_checks(inner))
    if plain:
        est = inner
    else:
        # The checks seed only a top-level random_state (set_random_state); the
        # wrapper's is the inner estimator's, seeded here as sklearn's tests seed theirs.
        inner = clone(inner)
        set_random_state(inner, 0)
        cls = wrapper_class(name)
        est = cls(inner)
        if check_params:
            _register_check_params(inner, cls)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            results = check_estimator(
                est, on_fail=None, on_skip=None, expected_failed_checks=expected
            )
        except Exception as exc:  # the sweep itself could not run the checks
            results = [{"check_name": "check_estimator", "status": "failed",
                        "exception": exc}]
    failed = [
        {"check": r["check_name"], "exception": f"{type(r['exception']).__name__}: "
         f"{str(r['exception']).strip()[:600]}"}
        for r in results if r["status"] == "failed"
    ]
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    for f in failed:
        f["artefact"] = None if plain else ARTEFACTS.get((name, f["check"]))
    return {
        "estimator": name,
        "instance": repr(inner),
        "passed": not failed,
        "failed": failed,
        "counts": counts,
        "seconds": round(time.perf_counter() - started, 2),
    }


def write(rows: list[dict], out: Path, stem: str, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n, ok = len(rows), sum(r["passed"] for r in rows)
    explained = sum(bool(r["failed"]) and all(f["artefact"] for f in r["failed"])
                    for r in rows)
    (out / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    lines = [
        f"# Estimator sweep{' (plain scikit-learn)' if meta['plain'] else ''}",
        "",
        f"{ok} of {n} instances pass ({100 * ok / n:.1f}%): "
        f"scikit-learn {meta['sklearn']}, Python {meta['python']}, "
        f"check parameters {'on' if meta['check_params'] else 'off'}, "
        f"{meta['seconds']:.0f} s.",
        "",
        f"Of the {n - ok} failing, {explained} fail only on checks that reach into the "
        "estimator (artefacts: `ARTEFACTS` in the script, docs/internals.rst \"The "
        f"estimator sweep\"); {n - ok - explained} fail otherwise (unexplained).",
        "",
        "Denominator: every instance sklearn's common tests build (`_tested_estimators`: "
        "each class `all_estimators()` lists, with sklearn's `INIT_PARAMS` where it has "
        "them, FrozenEstimator skipped). A pass: no check failed, sklearn's own expected "
        "failures for the plain estimator excepted. Made by `benchmarks/estimator_sweep.py`.",
        "",
        "## Failures",
        "",
        "| estimator | check | artefact of the check | exception |",
        "|---|---|---|---|",
    ]
    for r in rows:
        for f in r["failed"]:
            exc = f["exception"].replace("|", "\\|").replace("\n", " ")
            why = f["artefact"] or "**unexplained**"
            lines.append(f"| {r['estimator']} | `{f['check']}` | {why} | {exc[:300]} |")
    lines += ["", "## Every instance", "", "| instance | result | checks | seconds |",
              "|---|---|---|---|"]
    for r in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
        inst = r["instance"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{inst}` | {'pass' if r['passed'] else 'FAIL'} | {counts} "
                     f"| {r['seconds']} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    import sklearn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated estimator class names")
    parser.add_argument("--plain", action="store_true", help="run unwrapped estimators")
    parser.add_argument("--no-check-params", dest="check_params", action="store_false",
                        help="without sklearn's per-check parameters (estimator__<name>)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    instances = [e for e in _instances() if not only or type(e).__name__ in only]
    started = time.perf_counter()
    rows = []
    for i, inner in enumerate(instances, 1):
        row = run_one(inner, plain=args.plain, check_params=args.check_params)
        rows.append(row)
        status = "pass" if row["passed"] else "FAIL " + ", ".join(
            f["check"] for f in row["failed"])
        print(f"[{i}/{len(instances)}] {row['estimator']} {row['seconds']}s {status}",
              flush=True)
    meta = {
        "sklearn": sklearn.__version__, "python": platform.python_version(),
        "plain": args.plain, "check_params": args.check_params, "only": sorted(only),
        "seconds": time.perf_counter() - started,
    }
    stem = "estimator_sweep_plain" if args.plain else "estimator_sweep"
    if only:
        stem += "_subset"
    write(rows, args.out, stem, meta)
    ok = sum(r["passed"] for r in rows)
    unexplained = [r["estimator"] for r in rows if any(not f["artefact"] for f in r["failed"])]
    print(f"{ok} of {len(rows)} pass ({100 * ok / len(rows):.1f}%); "
          f"unexplained failures: {', '.join(unexplained) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
