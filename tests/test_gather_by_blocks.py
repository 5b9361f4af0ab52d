"""Gathering dask input into this process never concatenates it on a worker (#12 part 4).

``dask.compute`` on a cluster joins a collection's blocks in one task on one worker, which
dies when the data are larger than a worker's memory even though this process has room.
distsk's gather brings the blocks here one by one and assembles them here.
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="needs the distsk[dask] extra")
dd = pytest.importorskip("dask.dataframe", reason="needs the distsk[dask] extra")
pd = pytest.importorskip("pandas", reason="needs pandas (distsk[dask] extra)")


@pytest.mark.timeout(120)
def test_gather_equals_dask_compute(active_client):
    """Arrays in row x column blocks, unknown chunk sizes, dataframes, a y made from X
    and non-dask values come back as ``dask.compute`` returns them."""
    import dask

    from distsk._cluster.data import gather

    X = da.random.RandomState(0).normal(size=(1000, 7), chunks=(300, 3))
    y = X[:, 0] > 0
    filtered = X[X[:, 1] > 0]  # unknown chunk sizes
    frame = dd.from_pandas(pd.DataFrame({"a": np.arange(100), "b": np.arange(100.0)}),
                           npartitions=4)
    got = gather(X, y, filtered, frame, frame.a, 5, None)
    want = (*dask.compute(X, y, filtered, scheduler="sync"),
            *dask.compute(frame, frame.a, scheduler="sync"), 5, None)
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == w.dtype
    pd.testing.assert_frame_equal(got[3], want[3])
    pd.testing.assert_series_equal(got[4], want[4])
    assert got[5:] == (5, None)


@pytest.mark.timeout(120)
def test_gather_raises_a_blocks_own_error(active_client):
    from distsk._cluster.data import gather

    def fail(block):
        raise ZeroDivisionError("block 2 is bad")

    X = da.ones((40, 2), chunks=10).map_blocks(
        lambda b, block_info=None: fail(b) if block_info[0]["chunk-location"][0] == 2 else b,
        dtype=float)
    with pytest.raises(ZeroDivisionError, match="block 2 is bad"):
        gather(X)


@pytest.fixture(scope="module")
def small_workers():
    """Two workers of 400 MB each (dask's limit: paused at 80 %, restarted at 95 %)."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        memory_limit="400MB", dashboard_address=None, worker_dashboard_address=None,
    ) as cluster, Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)
        yield client


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fit_gathers_data_larger_than_a_worker(small_workers):
    """420 MB generated on workers of 400 MB each: the fit gathers it into this process
    and gives sklearn's model. Before, the gather's concatenation task killed every
    worker that ran it (KilledWorker after ~14 s here)."""
    from sklearn.linear_model import LinearRegression

    from distsk import DistributedEstimator

    X = da.random.RandomState(0).normal(size=(2_500_000, 20), chunks=(125_000, 20))
    y = X[:, 0] * 2.0 - X[:, 3] + 1.0
    assert X.nbytes + y.nbytes > 400e6
    est = DistributedEstimator(LinearRegression(), backend="sequential",
                               client=small_workers).fit(X, y)
    assert est.plan_.gather
    Xn, yn = X.compute(scheduler="threads"), y.compute(scheduler="threads")
    ref = LinearRegression().fit(Xn, yn)
    np.testing.assert_allclose(est.estimator_.coef_, ref.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.estimator_.intercept_, ref.intercept_, atol=1e-12)
