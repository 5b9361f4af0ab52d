"""What a Dask task of a search carries: one estimator per batch when the fits' estimators
are unfitted copies of one (#10), each fit still getting its own object on the worker."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from distsk._units.remote import CloneOfFirst, pack, unfitted_copy, unpack

pytestmark = pytest.mark.timeout(60)


def _items(estimators):
    return [(len, [est, "X", "y"], {"parameters": {"C": float(i)}})
            for i, est in enumerate(estimators)]


@pytest.mark.parametrize("base", [
    LogisticRegression(C=2.0, class_weight={0: 1.0, 1: 2.0}),
    make_pipeline(StandardScaler(), LogisticRegression()),
    RandomForestClassifier(n_estimators=5, random_state=0),
], ids=["lr", "pipeline", "forest"])
def test_clones_of_one_estimator_travel_once_and_arrive_as_separate_clones(base):
    items = _items([clone(base) for _ in range(8)])
    shared, _ = pack(items, same_estimators=True)
    # What 8 more fits add: a parameter dict each when shared, an estimator each when
    # not (growth, not totals: the task's fixed part does not blur it).
    more = _items([clone(base) for _ in range(16)])
    grown_shared = len(pack(more, same_estimators=True)[0]) - len(shared)
    grown_each = len(pack(more)[0]) - len(pack(items)[0])
    assert grown_shared < grown_each / 2
    back = unpack(shared, [])
    estimators = [args[0] for _, args, _ in back]
    assert len({id(e) for e in estimators}) == 8  # each fit mutates its own
    for est in estimators:
        assert not isinstance(est, CloneOfFirst)
        assert repr(est.get_params(deep=True)) == repr(base.get_params(deep=True))
    assert [kw["parameters"] for _, _, kw in back] == [kw["parameters"] for _, _, kw in items]


def test_estimators_that_are_not_unfitted_copies_travel_as_they_are():
    X, y = np.random.RandomState(0).rand(20, 2), np.arange(20) % 2
    fitted = LogisticRegression().fit(X, y)
    assert not unfitted_copy(fitted, LogisticRegression())
    assert not unfitted_copy(LogisticRegression(C=1.0), LogisticRegression(C=2.0))
    assert not unfitted_copy(LogisticRegression(), RandomForestClassifier())
    # A RandomState parameter is not compared: its estimators are not shared.
    rs = RandomForestClassifier(random_state=np.random.RandomState(0))
    assert not unfitted_copy(clone(rs), clone(rs))
    items = _items([LogisticRegression(), fitted, LogisticRegression(C=3.0)])
    back = unpack(*pack(items, same_estimators=True))
    assert hasattr(back[1][1][0], "coef_")  # the fitted one arrives fitted
    assert back[2][1][0].C == 3.0
