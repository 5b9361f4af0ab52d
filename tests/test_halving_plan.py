"""The planner sees a halving search's rounds: the rounds distsk predicts before fit
are sklearn's, the probe fits at the first round's resources, and the work is priced
per round (growing survivors priced by the trees they add)."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV

from distsk import DistributedHalvingGridSearchCV, DistributedHalvingRandomSearchCV
from distsk._search.driver import PlannedWork, Probe
from distsk._search.driver import work_fits as _work_fits

X, y = make_classification(n_samples=400, n_features=6, n_informative=4, random_state=0)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(min_resources="smallest"),
    dict(min_resources=30, factor=2),
    dict(min_resources=20, aggressive_elimination=True),
    dict(max_resources=200, min_resources="exhaust", factor=4),
])
@pytest.mark.parametrize("n", [5, 9, 28])
def test_planned_rounds_are_sklearns(kw, n):
    grid = {"C": list(np.logspace(-3, 2, n))}
    ref = HalvingGridSearchCV(LogisticRegression(), grid, cv=3, **kw).fit(X, y)
    ours = DistributedHalvingGridSearchCV(LogisticRegression(), grid, cv=3, **kw)
    rounds = ours._planned_rounds(len(X), y, n)
    assert [c for c, _ in rounds] == ref.n_candidates_
    assert [r for _, r in rounds] == ref.n_resources_


def test_planned_rounds_for_a_size_resource_and_a_regressor():
    grid = {"max_depth": [2, 4, 6, None]}
    kw = dict(resource="n_estimators", max_resources=40, cv=3, random_state=0)
    ref = HalvingGridSearchCV(RandomForestClassifier(random_state=0), grid, **kw).fit(X, y)
    ours = DistributedHalvingGridSearchCV(RandomForestClassifier(random_state=0), grid, **kw)
    assert ours._planned_rounds(len(X), y, 4) == list(zip(ref.n_candidates_,
                                                          ref.n_resources_))
    target = X[:, 0]
    ref = HalvingRandomSearchCV(Ridge(), {"alpha": [0.1, 1, 10, 100]}, n_candidates=4,
                                cv=3, random_state=0).fit(X, target)
    ours = DistributedHalvingRandomSearchCV(Ridge(), {"alpha": [0.1, 1, 10, 100]},
                                            n_candidates=4, cv=3, random_state=0)
    assert ours._planned_rounds(len(X), target, 4) == list(zip(ref.n_candidates_,
                                                               ref.n_resources_))


def test_work_is_priced_per_round_from_two_probes():
    probes = (Probe({}, None, None, 10), Probe({}, None, None, 30))
    work = PlannedWork(6, probes, terms=((3, 10), (3, 20)))
    # 1 s at 10, 2 s at 30: 0.5 s fixed + 0.05 s per unit; 3 x 1 s + 3 x 1.5 s = 7.5 s.
    assert _work_fits(work, [1.0, 2.0]) == pytest.approx(7.5)
    # One probe: per unit only (3 x 1 + 3 x 2).
    assert _work_fits(work, [1.0, None]) == pytest.approx(9.0)
    assert _work_fits(PlannedWork(6, probes[:1]), [1.0]) is None  # an ordinary search


def test_auto_plan_prices_the_rounds_and_probes_the_first():
    grid = {"max_depth": [2, 4, None], "max_features": [1, 2, 3]}
    search = DistributedHalvingGridSearchCV(
        RandomForestClassifier(random_state=0), grid, resource="n_estimators",
        max_resources=27, cv=3, random_state=0).fit(X, y)
    work = search._planned_work(X, y, search._planning_candidates())
    assert [p.candidate["n_estimators"] for p in work.probes] == [3, 9]
    # 9 x 3, then 3 survivors grow by 6, then 1 by 18 trees (x 3 folds).
    assert work.terms == ((27, 3), (9, 6), (3, 18))
    assert work.n_fits == 3 * (9 + 3 + 1)
    detail = search.plan_.predictions[0].detail
    assert "3 rounds: 9 x 3, 3 x 9, 1 x 27 n_estimators; survivors grow" in detail
