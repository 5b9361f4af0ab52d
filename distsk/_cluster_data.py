"""Dask data that stays on the cluster: assembled on a worker, never held by the client.

A dask array or dataframe that fits in a worker's memory is persisted, its blocks are
concatenated into one in-memory array (or DataFrame) by a task on a worker -- blocks
travel worker to worker -- and the client keeps only an :class:`OnCluster` placeholder:
the future of that array, its shape, dtype and column names. Searches and cluster fits
pass the placeholder where sklearn passes ``X``; the Dask engine hands tasks the future,
so every worker that runs a fit copies the array from another worker, once.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

__all__ = ["OnCluster", "assemble_on_workers", "ASSEMBLE_TIMEOUT", "sending_input"]

#: Seconds the blocks of a dask collection may take to be computed and assembled.
ASSEMBLE_TIMEOUT = 600.0


@contextlib.contextmanager
def sending_input():
    """distsk's own compute or persist of the user's dask input, without dask's warning.

    Data held in the user's graph (``da.from_array`` on a numpy array) travels to the
    cluster once when distsk computes, gathers or persists it: what dask's "Sending large
    graph" warning asks for, so distsk's own call says nothing to user code (#14).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        yield


class OnCluster:
    """Stands for a dask collection assembled in one worker's memory.

    sklearn reads only its length and shape in the client (``indexable``, the CV
    splitters); the fits read the real array on the workers. Anything that would need
    the values in the client says so instead of silently gathering them.
    """

    def __init__(self, future, shape, dtype, columns=None, kind="dask-array", token=""):
        self.future = future
        self.token = token
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.columns = columns
        self.kind = kind

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def _refuse(self, what):
        raise TypeError(
            f"The {self.kind} of shape {self.shape} passed to fit stays on the Dask cluster "
            f"(assembled on a worker, key {self.future.key!r}); {what} would need its values "
            "in this process. Pass max_gather_bytes large enough to gather it, or a CV "
            "splitter that needs only the number of rows (and y)."
        )

    def __getitem__(self, item):
        self._refuse("indexing it here")

    def __array__(self, dtype=None, copy=None):
        self._refuse("converting it to a numpy array here")

    def __reduce__(self):
        # Pickled only to be hashed (checkpoint keys): the dask token names the data.
        # Unpickling it anywhere fails with the reason.
        return (_unpickled, (self.kind, self.shape, self.token))

    def __repr__(self):
        return f"OnCluster({self.kind}, shape={self.shape}, key={self.future.key!r})"


def _unpickled(kind, shape, token):
    raise TypeError(
        f"A placeholder for a {kind} of shape {shape} kept on a Dask cluster (token "
        f"{token}) was sent to another process; only its Dask future can travel."
    )


def _shape(value):
    return tuple(value.shape), getattr(value, "dtype", None)


def _concatenate(blocks):
    first = blocks[0]
    if hasattr(first, "iloc"):
        import pandas as pd

        return pd.concat(blocks, axis=0) if len(blocks) > 1 else first
    import scipy.sparse as sp

    if sp.issparse(first):
        return sp.vstack(blocks, format="csr")
    return np.concatenate(blocks, axis=0) if len(blocks) > 1 else np.array(first)


def assemble_on_workers(client, X, kind: str) -> OnCluster:
    """``X`` (dask array or dataframe) concatenated in one worker's memory."""
    import uuid

    from dask.base import tokenize

    if kind == "dask-array" and X.ndim == 2 and X.numblocks[1] > 1:
        X = X.rechunk({1: -1})  # whole rows per block
    parts = X.to_delayed().ravel().tolist() if kind == "dask-array" else X.to_delayed()
    with sending_input():
        blocks = client.compute(parts)
    try:
        assembled = client.submit(_concatenate, blocks, pure=False,
                                  key=f"distsk-assembled-{uuid.uuid4().hex}")
        # A block's own error is raised here, as computing the collection would.
        shape, dtype = client.submit(_shape, assembled, pure=False).result(
            timeout=ASSEMBLE_TIMEOUT)
    finally:
        for f in blocks:
            f.release()
    columns = list(X.columns) if kind == "dask-dataframe" else None
    return OnCluster(assembled, shape, dtype, columns, kind, tokenize(X))
