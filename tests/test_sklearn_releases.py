"""What differs between the scikit-learn releases distsk supports (1.6 and later): the
features built on sklearn 1.9's fit callbacks say which release they need on older ones,
and what sklearn's own machinery carries to a worker (configuration, warning filters)
still arrives there. ``distsk/_compat.py`` decides by what the installed release has."""

import pickle
import re
import warnings

import pytest
import sklearn
from sklearn import config_context, get_config
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from distsk import (
    DistributedHalvingGridSearchCV,
    DistributedHalvingRandomSearchCV,
    DistributedSearchCV,
)
from distsk._compat import CALLBACKS_NEED, HAS_CALLBACKS, with_callers_settings

X, y = make_classification(n_samples=60, n_features=4, random_state=0)
GRID = {"C": [0.1, 1.0]}
SEARCHES = [DistributedSearchCV, DistributedHalvingGridSearchCV,
            DistributedHalvingRandomSearchCV]


@pytest.mark.parametrize("cls", SEARCHES, ids=lambda c: c.__name__)
def test_set_callbacks_exists_exactly_where_sklearns_searches_have_it(cls):
    search = cls(LogisticRegression(), GRID, cv=2)
    assert hasattr(search, "set_callbacks") == hasattr(GridSearchCV, "set_callbacks")
    assert hasattr(search, "set_callbacks") == HAS_CALLBACKS
    if not HAS_CALLBACKS:  # sklearn < 1.9: sklearn's AttributeError, naming the release
        with pytest.raises(AttributeError, match=re.escape(
                f"{cls.__name__}.set_callbacks needs {CALLBACKS_NEED}; scikit-learn "
                f"{sklearn.__version__} is installed")):
            search.set_callbacks(object())


@pytest.mark.skipif(HAS_CALLBACKS, reason="scikit-learn >= 1.9 draws the bar "
                    "(tests/test_first_hour.py)")
def test_verbose_1_on_older_sklearn_says_why_there_is_no_bar_and_fits_as_sklearn(capsys):
    ours = DistributedSearchCV(LogisticRegression(), GRID, cv=2, verbose=1,
                               backend="sequential").fit(X, y)
    out = capsys.readouterr().out
    assert (f"[distsk] No progress bar: it is a scikit-learn fit callback, which needs "
            f"{CALLBACKS_NEED} (scikit-learn {sklearn.__version__} is installed).") in out
    assert "Fitting 2 folds for each of 2 candidates, totalling 4 fits" in out  # sklearn's
    theirs = GridSearchCV(LogisticRegression(), GRID, cv=2).fit(X, y)
    assert ours.best_params_ == theirs.best_params_
    assert list(ours.cv_results_["mean_test_score"]) == list(
        theirs.cv_results_["mean_test_score"])
    assert "_skl_callbacks" not in ours.__dict__


def _configured_and_warned():
    warnings.warn("from the worker", UserWarning, stacklevel=1)
    return get_config()["assume_finite"]


def test_work_sent_with_the_callers_settings_runs_under_its_config_and_filters():
    # As sklearn's Parallel sends a call (config: every release; warning filters: 1.7+,
    # and distsk's own wrapper on 1.6), pickled as it travels to a worker.
    with config_context(assume_finite=True), warnings.catch_warnings():
        warnings.filterwarnings("error", message="from the worker", category=UserWarning)
        sent = pickle.dumps(with_callers_settings(
            _configured_and_warned, get_config(), warnings.filters))
    arrived = pickle.loads(sent)
    assert get_config()["assume_finite"] is False  # not this thread's settings
    with pytest.raises(UserWarning, match="from the worker"):
        arrived()
    with warnings.catch_warnings():
        arrived_without_filters = pickle.loads(pickle.dumps(with_callers_settings(
            _configured_and_warned, {"assume_finite": True}, [("ignore", None, Warning,
                                                                None, 0)])))
        warnings.simplefilter("error")  # the caller's filters here are not the sent ones
        assert arrived_without_filters() is True
