"""scikit-learn's own tests of HalvingGridSearchCV / HalvingRandomSearchCV, run with
distsk's classes in their place (its test module, with only those two names rebound)."""

import types

import pytest

# sklearn's test modules use markers of sklearn's own conftest ("thread_unsafe", for its
# free-threading runs); this project runs with --strict-markers, so pytest's marker
# check is off while they are imported.
_config, pytest.mark._config = pytest.mark._config, None
try:
    suite = pytest.importorskip(
        "sklearn.model_selection.tests.test_successive_halving",
        reason="scikit-learn installed without its tests (sklearn/model_selection/tests)")
finally:
    pytest.mark._config = _config

_ANCHOR = "from sklearn.svm import SVC, LinearSVC\n"
_OURS = (
    "from distsk import DistributedHalvingGridSearchCV as HalvingGridSearchCV\n"
    "from distsk import DistributedHalvingRandomSearchCV as HalvingRandomSearchCV\n"
)
# Fixed to this process, for the test that records every fit in closure lists here:
# backend="auto" first makes one probe fit (to choose the engine), one fit more than
# sklearn makes, and loky / Dask fits would record in other processes.
_OURS_IN_PROCESS = (
    "import functools\n"
    "import distsk\n"
    "HalvingGridSearchCV = functools.partial(\n"
    "    distsk.DistributedHalvingGridSearchCV, backend='sequential')\n"
    "HalvingRandomSearchCV = functools.partial(\n"
    "    distsk.DistributedHalvingRandomSearchCV, backend='sequential')\n"
)
# test_cv_results scores with a scorer that draws from one RandomState and asserts every
# score is unique: true only when all fits run in one process, in order (as sklearn's
# n_jobs=None does); backend="auto" runs them on loky when the cost model predicts a
# gain, and each loky task then draws from its own copy (failed in runs under load).
_IN_PROCESS_TESTS = {"test_base_estimator_inputs", "test_cv_results"}


def _rebound(ours):
    with open(suite.__file__) as f:
        source = f.read()
    assert _ANCHOR in source, "sklearn's halving test module changed its imports"
    module = types.ModuleType(suite.__name__)
    module.__file__ = suite.__file__
    exec(compile(source.replace(_ANCHOR, _ANCHOR + ours), suite.__file__, "exec"),
         module.__dict__)
    return module


def _tests(module, names=None):
    return {name: value for name, value in vars(module).items()
            if name.startswith("test_") and callable(value) and (names is None or name in names)}


globals().update(_tests(_rebound(_OURS)))
globals().update(_tests(_rebound(_OURS_IN_PROCESS), _IN_PROCESS_TESTS))
