"""A LocalCluster whose workers spill to disk and never pause or die: data over the
cluster's memory limit slow a fit down instead of stopping it.

Used by the ``larger-than-memory-lr`` benchmark and by tests/test_solver_choice.py
(which imports it as tests import ``benchmarks.sleepy``). Independent of distsk.
"""

from __future__ import annotations


def spilling_cluster(n_workers: int, memory_limit: str):
    """A ``distributed.LocalCluster`` of ``n_workers`` processes x 1 thread on loopback,
    no dashboards, ``memory_limit`` each.

    Managed memory is spilled to disk above 60% of the limit (``target``); the thresholds
    on the whole process's memory (``spill``, ``pause``, ``terminate``) are off, so a
    worker over its limit keeps running rather than pausing or being restarted. The
    workers read this configuration when they start; the caller closes the cluster.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.memory.target": 0.6,
                          "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False,
                          "distributed.worker.memory.terminate": False}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            memory_limit=memory_limit, host="127.0.0.1",
                            dashboard_address=None, worker_dashboard_address=None)
