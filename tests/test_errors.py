"""Bad options and unreachable clusters get clear errors in bounded time."""

import os
import time

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

import distsk
from distsk import ClusterUnavailableError, DistributedEstimator, DistributedSearchCV, explain

from .conftest import free_port

X, y = make_classification(n_samples=60, n_features=4, random_state=0)


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="'backend' parameter") as err:
        DistributedEstimator(LogisticRegression(), backend="spark").fit(X, y)
    for name in ("auto", "sequential", "loky", "dask", "dask-ml", "xgboost"):
        assert repr(name) in str(err.value)


def test_search_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="'backend' parameter.*'loky'"):
        DistributedSearchCV(LogisticRegression(), {"C": [1]}, backend="ray").fit(X, y)


@pytest.mark.parametrize("backend", ["dask", "dask-ml", "xgboost"])
def test_cluster_backend_without_cluster_fails_fast(backend):
    start = time.perf_counter()
    with pytest.raises(ClusterUnavailableError, match="needs a Dask cluster"):
        DistributedEstimator(LogisticRegression(), backend=backend).fit(X, y)
    assert time.perf_counter() - start < 5


def test_unanswering_address_is_named_within_the_timeout():
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(ClusterUnavailableError, match=address.replace(".", r"\.")):
        DistributedEstimator(LogisticRegression(), client=address).fit(X, y)
    assert time.perf_counter() - start < 30


def test_client_of_wrong_type_is_explained():
    with pytest.raises(TypeError, match="client must be None, a distributed.Client or a scheduler address"):
        DistributedEstimator(LogisticRegression(), client=42).fit(X, y)


def test_bad_gather_limit_is_explained():
    with pytest.raises(ValueError, match="max_gather_bytes='lots' is not a size"):
        DistributedEstimator(LogisticRegression(), max_gather_bytes="lots").fit(X, y)


def test_search_needs_exactly_one_candidate_source():
    with pytest.raises(ValueError, match="exactly one of param_grid"):
        DistributedSearchCV(LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="both was given"):
        DistributedSearchCV(LogisticRegression(), {"C": [1]}, param_distributions={"C": [1]}).fit(X, y)


def test_explain_does_not_fit():
    est = DistributedEstimator(LogisticRegression())
    plan = explain(est, X)
    assert plan.executor == "sequential" and "in-memory numpy array" in plan.reason
    assert not hasattr(est, "estimator_")
    assert explain(LogisticRegression(), np.zeros((10, 2))).executor == "sequential"


def test_inner_exception_type_and_message_kept():
    with pytest.raises(ValueError) as ref:
        LogisticRegression(C=-1).fit(X, y)
    with pytest.raises(ValueError) as ours:
        DistributedEstimator(LogisticRegression(C=-1)).fit(X, y)
    assert type(ours.value) is type(ref.value) and str(ours.value) == str(ref.value)


class _Connection:
    """Like a live connection: copies to itself (as sklearn's clone needs), never pickles."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("cannot pickle a live connection")


class _HoldsConnection(LogisticRegression):
    def __init__(self, C=1.0, conn=None):
        super().__init__(C=C)
        self.conn = conn


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_unpicklable_parameter_is_named_before_work_starts(backend, request):
    client = request.getfixturevalue("client") if backend == "dask" else None
    est = _HoldsConnection(conn=_Connection())
    with pytest.raises(TypeError, match="Parameter 'conn' of _HoldsConnection holds a "
                                        "_Connection.*cannot be sent to"):
        DistributedSearchCV(est, {"C": [0.1, 1.0]}, cv=2, backend=backend,
                            client=client).fit(X, y)
    if client is not None:
        with pytest.raises(TypeError, match="Parameter 'conn'.*cannot be sent to the Dask"):
            DistributedEstimator(est, backend="dask", client=client).fit(X, y)


def test_unpicklable_parameter_message_names_the_option_of_its_context():
    # distsk's estimators choose the engine with backend=, the joblib backend with engine=.
    est = _HoldsConnection(conn=_Connection())
    with pytest.raises(TypeError, match="Parameter 'conn'") as ours:
        DistributedSearchCV(est, {"C": [0.1, 1.0]}, cv=2, backend="loky").fit(X, y)
    assert str(ours.value).endswith("or use backend='sequential'.")
    # (joblib's parallel_config takes effect when made, so each is made at its ``with``.)
    for under in (lambda: joblib.parallel_config(backend="distsk", engine="loky"),
                  lambda: distsk.parallel_backend("loky")):
        with under(), pytest.raises(TypeError, match="Parameter 'conn'") as joblibs:
            GridSearchCV(est, {"C": [0.1, 1.0]}, cv=2).fit(X, y)
        assert "backend='sequential'" not in str(joblibs.value)
        assert ("or use engine='sequential' (joblib.parallel_config(backend='distsk', "
                "engine='sequential') or distsk.parallel_backend('sequential'))."
                ) in str(joblibs.value)
    # ... and back to backend= once the joblib backend's call is over.
    with pytest.raises(TypeError, match=r"or use backend='sequential'\.$"):
        DistributedSearchCV(est, {"C": [0.1, 1.0]}, cv=2, backend="loky").fit(X, y)


def test_unpicklable_candidate_value_is_named():
    with pytest.raises(TypeError, match="Parameter 'conn'"):
        DistributedSearchCV(_HoldsConnection(), {"conn": [_Connection()]}, cv=2,
                            backend="loky").fit(X, y)


def test_embedded_cluster_listens_on_loopback_only_without_dashboard():
    import psutil

    from distsk._cluster.client import embedded_cluster

    def listening():
        me = psutil.Process()
        return {
            (p.pid, c.laddr) for p in [me, *me.children(recursive=True)]
            for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        }

    before = listening()  # other fixtures' servers in this test session
    with embedded_cluster(n_workers=1) as client:
        client.wait_for_workers(1, timeout=30)
        new = listening() - before
        listening = [addr for _, addr in new]
        assert listening, "the cluster should be listening somewhere"
        assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
        assert 8787 not in {addr.port for addr in listening}


def test_cli_cluster_of_the_tests_listens_on_loopback_only(cli_client):
    import psutil

    pids = set(cli_client.run(os.getpid).values())
    pids |= {cli_client.run_on_scheduler(os.getpid)}
    procs = [psutil.Process(pid) for pid in pids]
    procs += [p.parent() for p in procs if p.parent() is not None and "dask" in " ".join(
        p.parent().cmdline())]
    addrs = {c.laddr.ip for p in procs for c in p.net_connections(kind="inet")
             if c.status == psutil.CONN_LISTEN}
    assert addrs == {"127.0.0.1"}, addrs
