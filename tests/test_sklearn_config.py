"""scikit-learn's configuration (``sklearn.config_context``/``set_config``) reaches every
fit distsk runs, as sklearn's ``Parallel`` carries it to joblib workers: the calls distsk
makes itself (a halving survivor grown from its previous model, a refit run ahead, a
pipeline prefix shared by candidates, a fit sent to a Dask worker) run under the
configuration of the caller."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from distsk import DistributedEstimator, DistributedHalvingGridSearchCV, DistributedSearchCV

X, y = make_classification(n_samples=240, n_features=5, random_state=0)


def assume_finite(y_true, y_pred):
    """1.0 where the score runs with ``assume_finite=True``, else 0.0."""
    return float(sklearn.get_config()["assume_finite"])


# One of sklearn's scorer objects (a custom callable is not shared, so not grown).
assume_finite_scorer = make_scorer(assume_finite)


class ConfigRecorder(ClassifierMixin, BaseEstimator):
    """Records ``assume_finite`` as its fit saw it."""

    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y):
        self.assume_finite_ = sklearn.get_config()["assume_finite"]
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y, sample_weight=None):
        return float(self.assume_finite_) + self.c / 100


def _client(request, backend):
    return request.getfixturevalue("client") if backend == "dask" else None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_grown_survivors_score_under_the_callers_config(backend, request):
    grid = {"max_depth": [1, 2, 3, None]}
    forest = RandomForestClassifier(random_state=0)
    kwargs = dict(resource="n_estimators", max_resources=12, min_resources=3, factor=2,
                  cv=2, scoring=assume_finite_scorer, random_state=0)
    with sklearn.config_context(assume_finite=True):
        ref = HalvingGridSearchCV(forest, grid, **kwargs).fit(X, y)
        ours = DistributedHalvingGridSearchCV(forest, grid, backend=backend,
                                              client=_client(request, backend),
                                              **kwargs).fit(X, y)
    assert ours.n_fits_grown_ > 0  # the survivors were grown from their previous models
    assert np.all(ref.cv_results_["mean_test_score"] == 1.0)
    np.testing.assert_array_equal(ours.cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_refit_run_ahead_fits_under_the_callers_config(backend, request):
    # 9 candidates, factor 3: a last round of one, whose refit is sent with its fits.
    grid = {"c": list(range(9))}
    with sklearn.config_context(assume_finite=True):
        ref = HalvingGridSearchCV(ConfigRecorder(), grid, cv=2, random_state=0).fit(X, y)
        ours = DistributedHalvingGridSearchCV(
            ConfigRecorder(), grid, cv=2, random_state=0, n_jobs=2, backend=backend,
            client=_client(request, backend)).fit(X, y)
    assert ours._refit_ran_ahead
    assert ref.best_estimator_.assume_finite_ is True
    assert ours.best_estimator_.assume_finite_ is True
    np.testing.assert_array_equal(ours.cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"])


class FrameRecorder(ClassifierMixin, BaseEstimator):
    """Records whether its fit received a DataFrame; scores 1 if so (+10 if its
    score's input is one too)."""

    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y):
        self.frame_ = isinstance(X, pd.DataFrame)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y, sample_weight=None):
        return float(self.frame_) + 10 * float(isinstance(X, pd.DataFrame))


Xf = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["sequential", "loky", "dask"])
def test_a_shared_pipeline_prefix_transforms_under_the_callers_config(backend, request):
    # transform_output="pandas": the prefix hands its next step a DataFrame.
    pipe = make_pipeline(StandardScaler(), FrameRecorder())
    grid = {"framerecorder__c": [1.0, 2.0, 3.0]}
    with sklearn.config_context(transform_output="pandas"):
        ref = GridSearchCV(pipe, grid, cv=3).fit(Xf, y)
        ours = DistributedSearchCV(pipe, grid, cv=3, backend=backend,
                                   client=_client(request, backend)).fit(Xf, y)
    assert ours.n_fits_performed_ == 3  # one prefix fit per fold, shared
    assert ours.n_final_step_fits_ == 9  # 3 candidates x 3 folds on those prefixes
    assert np.all(ref.cv_results_["mean_test_score"] == 11.0)
    np.testing.assert_array_equal(ours.cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"])


@pytest.mark.timeout(120)
def test_a_fit_on_the_cluster_runs_under_the_callers_config(client):
    pipe = make_pipeline(StandardScaler(), FrameRecorder())
    with sklearn.config_context(transform_output="pandas"):
        ref = clone(pipe).fit(Xf, y)
        ours = DistributedEstimator(pipe, backend="dask", client=client).fit(Xf, y)
    assert ours.plan_.executor == "dask"
    assert ref[-1].frame_ is True
    assert ours.estimator_[-1].frame_ is True
