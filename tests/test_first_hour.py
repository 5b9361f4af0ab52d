"""What a new user meets in the first hour: a wrong address fails at once, distsk's own use
of dask, dask-ml and xgboost raises no warnings in user code, ``verbose=1`` shows progress,
and a fitted estimator shows its plan in a notebook."""

import socket
import time

import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from distsk import ClusterUnavailableError, DistributedEstimator

from .conftest import free_port

X, y = make_classification(n_samples=400, n_features=6, random_state=0)


# ---------------------------------------------------------------------------- addresses
@pytest.mark.parametrize("address", ["tcp://127.0.0.1:{port}", "tls://127.0.0.1:{port}"])
def test_refused_address_fails_at_once_every_time_with_the_same_message(address):
    import dask

    from distsk._cluster import _by_address

    address = address.format(port=free_port())
    messages = []
    # tls:// is refused before any connection without client credentials; a configured
    # loader counts as credentials, so the refusal is the port's.
    loader = {"distributed.client.security-loader": "distsk.never_called"}
    for _ in range(2):
        start = time.perf_counter()
        with dask.config.set(loader), pytest.raises(ClusterUnavailableError) as info:
            DistributedEstimator(LogisticRegression(), client=address).fit(X, y)
        assert time.perf_counter() - start < 2  # distributed alone retries for 10 s
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert f"Could not connect to a Dask scheduler at {address!r}" in messages[0]
    assert "ConnectionRefusedError" in messages[0]
    assert "Check that `dask scheduler` runs there" in messages[0]
    assert address not in _by_address


def test_silent_address_waits_for_the_timeout_and_says_so():
    from distsk._cluster import resolve_client

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(ClusterUnavailableError, match=r"within 1 s"):
            resolve_client(address, timeout=1.0)
        assert 0.9 < time.perf_counter() - start < 10
