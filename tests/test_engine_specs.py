"""Engine specs (distsk/_decide/specs.py): one list the planner reads, agreeing with the
registry of executor classes (distsk/_engines/__init__.py), and importable without any
engine or optional dependency."""

from __future__ import annotations

import subprocess
import sys

from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier

from distsk._decide.specs import SPECS, engine_names, spec
from distsk._engines import ENGINES


def test_the_registry_and_the_specs_name_the_same_engines_in_the_same_order():
    assert tuple(e.name for e in ENGINES) == tuple(s.name for s in SPECS)


def test_registry_capabilities_are_the_specs():
    for engine in ENGINES:
        assert (engine.runs_searches, engine.needs_cluster) == (
            spec(engine.name).runs_searches, spec(engine.name).needs_cluster)


def test_planning_and_specs_import_no_engine_and_no_optional_dependency():
    # A fresh interpreter: this one has imported the engines long ago.
    code = (
        "import sys, distsk._decide.planning, distsk._decide.specs\n"
        "bad = sorted(m for m in sys.modules if m.startswith('distsk._engines') or "
        "m.split('.')[0] in ('dask_ml', 'dask_glm', 'xgboost'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == ""


def test_engine_modules_import_without_their_optional_dependency():
    # Optional engines import dask-ml and xgboost when they run, never when imported;
    # the registry imports no engine module until an executor is asked for.
    code = (
        "import sys, distsk._engines\n"
        "lazy = sorted(m for m in sys.modules if m.startswith('distsk._engines.') "
        "and m != 'distsk._engines.base')\n"
        "import distsk._engines.dask_ml, distsk._engines.xgboost, distsk._engines.xgboost_extmem\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask_ml', 'dask_glm', 'xgboost'))\n"
        "print(','.join(lazy + bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == ""


def test_capabilities_are_asked_of_the_specs():
    assert engine_names(larger_than_memory=True) == (
        "dask-ml", "xgboost", "xgboost-external-memory")
    assert engine_names(runs_searches=True) == ("sequential", "loky", "dask")
    assert {s.name for s in SPECS if s.in_process} == {"sequential", "loky"}


def test_every_search_engine_says_its_cost_and_how_it_runs_a_search():
    from distsk._decide.profile import ComputeProfile

    comp = ComputeProfile(4, 2**34, "tcp://10.0.0.5:8786", n_workers=2, worker_threads=8,
                          worker_memory_bytes=2**34)
    for s in SPECS:
        assert (s.predict_search is not None) == (s.search_plan is not None) == s.runs_searches
    assert spec("loky").search_plan(comp, -1)[0] == 4
    assert spec("dask").search_plan(comp, None)[0] == 8
    assert "8 worker threads" in spec("dask").search_plan(comp, None)[1]


def test_each_spec_says_what_it_cannot_fit_and_why():
    assert spec("sequential").can_fit(Ridge()) and spec("dask").can_fit(Ridge())
    assert spec("dask-ml").can_fit(LogisticRegression())
    assert spec("dask-ml").can_fit(SGDClassifier())  # partial_fit, block by block
    assert "has no equivalent of Ridge" in spec("dask-ml").refuses(Ridge())
    assert "trains xgboost models only; got Ridge" in spec("xgboost").refuses(Ridge())
    assert spec("xgboost-external-memory").refuses(Ridge()).startswith(
        "backend='xgboost-external-memory'")


def test_a_new_engine_is_one_spec_the_planner_loops_over():
    # The planner's predictions come from the specs it is given, in their order: a spec
    # for a new search engine is predicted and chosen with no other change.
    from dataclasses import replace

    from distsk._decide.cost_model import Costs, Prediction, SearchWork, cheapest, predict_search
    from distsk._decide.profile import ComputeProfile, InputProfile
    from distsk._decide.specs import EngineSpec

    work = SearchWork(InputProfile("numpy", (1000, 4), 32_000),
                      ComputeProfile(local_cores=2, local_available_bytes=2**34), Costs(),
                      n_fits=100, probe_seconds=0.01, probe_bytes=None, loky_slots=2,
                      dask_slots=None)
    assert [p.engine for p in predict_search(work, SPECS)] == ["sequential", "loky"]
    fast = EngineSpec("instant", runs_searches=True,
                      predict_search=lambda name, w: Prediction(name, 1e-6, "a new engine"))
    preds = predict_search(work, SPECS + (fast,))
    assert [p.engine for p in preds] == ["sequential", "loky", "instant"]
    assert cheapest(preds).engine == "instant"
    slow = replace(fast, predict_search=lambda name, w: Prediction(name, 1e6, "slow"))
    assert cheapest(predict_search(work, SPECS + (slow,))).engine != "instant"
