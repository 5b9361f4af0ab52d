"""pytest plugin: every test runs inside ``joblib.parallel_config(backend=...)``.

Loaded by ``run_sklearn_suites.py`` (``-p distsk_upstream_plugin``) into a pytest run of
scikit-learn's own test files. The engine comes from ``DISTSK_UPSTREAM_ENGINE``:

``distsk-dask``, ``distsk-loky``, ``distsk-sequential``
    distsk's joblib backend with that ``engine=``;
``joblib-dask``, ``joblib-loky``
    joblib's own backends, the reference.

Dask engines run on a LocalCluster of two one-thread worker processes on 127.0.0.1,
started once for the session, whose client is the active (default) one.
"""

from __future__ import annotations

import os

import pytest

ENGINES = ("distsk-dask", "distsk-loky", "distsk-sequential", "joblib-dask", "joblib-loky")

_state: dict = {}


def _engine() -> str:
    engine = os.environ.get("DISTSK_UPSTREAM_ENGINE", "distsk-dask")
    if engine not in ENGINES:
        raise pytest.UsageError(
            f"DISTSK_UPSTREAM_ENGINE must be one of {ENGINES}; got {engine!r}.")
    return engine


def pytest_configure(config):
    engine = _engine()
    _state["engine"] = engine
    if engine.endswith("-dask"):
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, worker_dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
        client = Client(cluster, set_as_default=True, timeout=30)
        client.wait_for_workers(2, timeout=30)
        _state["cluster"], _state["client"] = cluster, client
    if engine.startswith("distsk-"):
        import distsk  # noqa: F401  (registers the "distsk" joblib backend)


def pytest_unconfigure(config):
    client, cluster = _state.pop("client", None), _state.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def pytest_report_header(config):
    return f"distsk upstream run: engine {_state.get('engine')}"


def _config() -> dict:
    engine = _state["engine"]
    family, where = engine.split("-", 1)
    if family == "distsk":
        return {"backend": "distsk", "engine": where}
    return {"backend": where}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    from joblib import parallel_config

    with parallel_config(**_config()):
        return (yield)
