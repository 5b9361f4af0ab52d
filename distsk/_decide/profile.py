"""Profile: what the input is and what compute is present.

The first stage of profile -> plan -> execute. Everything here is cheap and never
computes a dask graph: sizes come from shapes, dtypes and the scheduler's bookkeeping.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["InputProfile", "ComputeProfile", "profile_input", "profile_compute", "format_bytes"]


@dataclass(frozen=True)
class InputProfile:
    """What one input (usually ``X``) is.

    Attributes
    ----------
    kind : str
        One of "numpy", "pandas", "sparse", "dask-array", "dask-dataframe", "other".
    shape : tuple or None
        Its shape; entries are ``None`` where unknown (dask with unknown chunks).
    nbytes : int or None
        Its size in memory, ``None`` when it cannot be known without computing.
    """

    kind: str
    shape: tuple | None = None
    nbytes: int | None = None

    @property
    def lazy(self) -> bool:
        return self.kind.startswith("dask-")

    def describe(self) -> str:
        size = "of unknown size" if self.nbytes is None else f"({format_bytes(self.nbytes)})"
        names = {
            "numpy": "in-memory numpy array",
            "pandas": "in-memory pandas DataFrame",
            "sparse": "in-memory scipy.sparse matrix",
            "dask-array": "dask array",
            "dask-dataframe": "dask DataFrame",
            "other": "in-memory array-like",
        }
        return f"{names[self.kind]} {size}"


@dataclass(frozen=True)
class ComputeProfile:
    """What compute is present.

    Attributes
    ----------
    local_cores : int
        Usable cores of this process (affinity aware).
    local_available_bytes : int
        Memory available on this machine now.
    client_address : str or None
        Scheduler address of the client in use, if any.
    n_workers, worker_threads, worker_memory_bytes : int
        Workers of that cluster, their total threads and total memory limit.
    workers_share_cores : bool
        The workers run on this machine (a loopback or in-process cluster): they share
        its cores with this process and with local loky processes.
    """

    local_cores: int
    local_available_bytes: int
    client_address: str | None = None
    n_workers: int = 0
    worker_threads: int = 0
    worker_memory_bytes: int = 0
    workers_share_cores: bool = False

    @property
    def has_cluster(self) -> bool:
        return self.client_address is not None and self.n_workers > 0

    def describe(self) -> str:
        local = f"{self.local_cores} local cores, {format_bytes(self.local_available_bytes)} free"
        if self.client_address is None:
            return f"no Dask client; {local}"
        return (
            f"Dask cluster at {self.client_address} with {self.n_workers} workers / "
            f"{self.worker_threads} threads / {format_bytes(self.worker_memory_bytes)}; {local}"
        )


def format_bytes(n: int | float) -> str:
    """Human size, as dask prints it ("16.00 MiB")."""
    from dask.utils import format_bytes as _fmt

    return _fmt(int(n))


def dask_kind(X) -> str | None:
    # Detect dask collections without importing dask: if the module was never
    # imported, X cannot be one of its types.
    da = sys.modules.get("dask.array")
    if da is not None and isinstance(X, da.Array):
        return "dask-array"
    dd = sys.modules.get("dask.dataframe")
    if dd is not None and isinstance(X, (dd.DataFrame, dd.Series)):
        return "dask-dataframe"
    return None


def profile_input(X) -> InputProfile:
    """Describe ``X`` without computing anything."""
    kind = dask_kind(X)
    if kind == "dask-array":
        shape = tuple(None if (s is None or np.isnan(s)) else int(s) for s in X.shape)
        known = all(s is not None for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64) * X.dtype.itemsize) if known else None
        return InputProfile("dask-array", shape, nbytes)
    if kind == "dask-dataframe":
        # Row counts of a dask DataFrame are unknown without a pass over the data.
        ncols = len(X.columns) if hasattr(X, "columns") else 1
        return InputProfile("dask-dataframe", (None, ncols), None)
    sp = sys.modules.get("scipy.sparse")
    if sp is not None and sp.issparse(X):
        nbytes = sum(getattr(X, a).nbytes for a in ("data", "indices", "indptr") if hasattr(X, a))
        if nbytes == 0 and hasattr(X, "row"):  # COO
            nbytes = X.data.nbytes + X.row.nbytes + X.col.nbytes
        return InputProfile("sparse", tuple(X.shape), int(nbytes))
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(X, (pd.DataFrame, pd.Series)):
        # A DataFrame's memory_usage is a Series (one entry a column), a Series' an int.
        return InputProfile("pandas", tuple(X.shape), int(np.sum(X.memory_usage(deep=False))))
    if isinstance(X, np.ndarray):
        return InputProfile("numpy", tuple(X.shape), int(X.nbytes))
    return InputProfile("other", None, None)


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def profile_compute(client=None) -> ComputeProfile:
    """Describe local compute and, if ``client`` is given, its cluster.

    Reads the scheduler's view already held by the client; no task runs.
    """
    import psutil

    cores = local_cores()
    avail = int(psutil.virtual_memory().available)
    if client is None:
        return ComputeProfile(cores, avail)
    info = client.scheduler_info(n_workers=-1) if _accepts_n_workers(client) else client.scheduler_info()
    if "total_threads" in info:
        # Recent distributed: the client's periodic refresh replaces the info it returns
        # with one that lists no workers (only totals), and can do so between the fetch
        # and the read: a cluster then looked empty now and then. Totals are in both.
        n_workers, threads = int(info["n_workers"]), int(info["total_threads"])
        memory = int(info.get("total_memory") or 0)
    else:
        workers = info.get("workers", {})
        n_workers = len(workers)
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        memory = sum(int(w.get("memory_limit", 0) or 0) for w in workers.values())
    addresses = list(info.get("workers") or ()) or [str(client.scheduler.address)]
    return ComputeProfile(
        cores, avail, str(client.scheduler.address), n_workers, threads, memory,
        workers_share_cores=all(_on_this_machine(a) for a in addresses),
    )


def _on_this_machine(address: str) -> bool:
    """Whether a Dask address ("tcp://127.0.0.1:8786", "inproc://...") is this machine."""
    from distributed.comm import get_address_host, parse_address

    if parse_address(address)[0] == "inproc":
        return True
    host = get_address_host(address)
    return host in ("localhost", "::1") or host.startswith("127.") or host in _own_hosts()


def _own_hosts() -> set[str]:
    import socket

    try:
        return {socket.gethostname(), socket.gethostbyname(socket.gethostname())}
    except OSError:  # pragma: no cover - no resolvable hostname
        return set()


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters
