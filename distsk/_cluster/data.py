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

__all__ = ["OnCluster", "assemble_on_workers", "ASSEMBLE_TIMEOUT", "sending_input", "gather",
           "compute_all", "compute_futures", "holds_dask", "is_delayed", "computed_delayed",
           "gather_inputs", "inputs_to_read", "measured", "resolve_gather_limit",
           "GATHER_FRACTION"]

#: Seconds the blocks of a dask collection may take to be computed and assembled.
ASSEMBLE_TIMEOUT = 600.0


#: Share of this machine's free memory that lazy input may occupy once gathered.
GATHER_FRACTION = 0.25


def resolve_gather_limit(value) -> int:
    """Bytes of lazy input that may be gathered: ``"auto"``, an int, or "2GB"-style text."""
    if isinstance(value, str) and value == "auto":
        import psutil

        return int(psutil.virtual_memory().available * GATHER_FRACTION)
    if isinstance(value, str):
        from dask.utils import parse_bytes

        try:
            return int(parse_bytes(value))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"max_gather_bytes={value!r} is not a size; expected 'auto', an int or text "
                "like '2GB'."
            ) from exc
    return int(value)


def measured(X, prof):
    """Input profile with the size of a dask collection measured when it is unknown.

    Costs one pass over the data (row counts); documented in "How distsk decides".
    """
    from .._decide.profile import InputProfile, profile_input

    if not prof.lazy or prof.nbytes is not None:
        return X, prof
    if prof.kind == "dask-array":
        X = X.compute_chunk_sizes()
        return X, profile_input(X)
    usage = X.memory_usage(deep=False)
    nbytes = usage.sum() if hasattr(usage, "sum") and usage.ndim else usage
    nbytes = int(nbytes.compute()) if hasattr(nbytes, "compute") else int(nbytes)
    return X, InputProfile(prof.kind, prof.shape, nbytes)




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
    blocks = compute_futures(client, parts)  # in row order, paired by key
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


def _distributed_client():
    """The ``distributed.Client`` that ``dask.compute`` would use now, or None."""
    import dask.base

    if "distributed" not in __import__("sys").modules:
        return None
    from distributed import Client

    owner = getattr(dask.base.get_scheduler(), "__self__", None)
    return owner if isinstance(owner, Client) else None


def _is_dask_collection(value) -> bool:
    """A dask array, DataFrame or Series (a ``dask.delayed`` answers every attribute,
    ``to_delayed`` included, so attributes cannot tell)."""
    from .._decide.profile import dask_kind

    return dask_kind(value) is not None


def holds_dask(value) -> bool:
    """Whether ``value`` is, or holds (in a list, tuple or dict), a dask object."""
    dask = __import__("sys").modules.get("dask")
    if dask is None:
        return False  # dask never imported: value cannot be one of its objects
    from dask.base import unpack_collections

    return bool(unpack_collections(value)[0])


def _tagged(i, value):
    return i, value


def compute_all(*values):
    """``dask.compute(*values)``, each result paired with its own input, always.

    ``dask.compute`` returns its results in the order of its arguments -- except when
    it does not: dask 2026.8.0 returns ``(a, c, b)`` for ``dask.compute(a, b, c)`` with
    ``a`` and ``c`` dask arrays and ``b`` a ``dask.delayed`` (collections of both graph
    kinds; tests/test_contracts.py reproduces it). A search handed X and groups as dask
    arrays and y as a delayed fitted on the groups as labels, silently (#21). Here each
    dask object is computed inside a task that returns it with its position, in one
    ``dask.compute`` call (work shared by the inputs, such as X and y read from one
    file, is still done once), and every result is placed by that position.
    """
    import dask

    lazy = [i for i, v in enumerate(values) if holds_dask(v)]
    out = list(values)
    if not lazy:
        return tuple(out)
    tagged = [dask.delayed(_tagged, pure=False)(i, values[i]) for i in lazy]
    with sending_input():
        results = dask.compute(*tagged)
    found = dict(results)
    if len(results) != len(lazy) or sorted(found) != lazy:
        raise RuntimeError(
            f"dask.compute returned results for inputs {sorted(found)} where inputs "
            f"{lazy} were asked for: distsk cannot pair its results with its inputs "
            "(please report this with your dask version)."
        )
    for i in lazy:
        out[i] = found[i]
    return tuple(out)


def compute_futures(client, parts: list) -> list:
    """``client.compute(parts)`` for ``dask.delayed`` parts: the futures in the order
    of ``parts``, paired by key (the order ``client.compute`` returns is not relied on:
    see :func:`compute_all`)."""
    with sending_input():
        futures = client.compute(parts)
    by_key = {f.key: f for f in futures}
    try:
        return [by_key[p.key] for p in parts]
    except KeyError as exc:
        for f in futures:
            f.release()
        raise RuntimeError(
            f"Dask returned no future for part {exc.args[0]!r}: distsk cannot pair its "
            "results with its inputs (please report this with your dask version)."
        ) from exc


def is_delayed(value) -> bool:
    """Whether ``value`` is a ``dask.delayed`` object (detected without importing dask)."""
    module = __import__("sys").modules.get("dask.delayed")
    return module is not None and isinstance(value, module.Delayed)


def computed_delayed(value, name: str, max_gather_bytes, timeout: float = ASSEMBLE_TIMEOUT):
    """A ``dask.delayed`` input computed into this process, which holds what sklearn reads.

    Its size is unknown until it is computed: on a distributed cluster it is computed on
    a worker, its size measured there, and it is fetched only when it is at most
    ``max_gather_bytes`` (the estimator's option, resolved only here: predict-like calls
    pass through on every call) allows (else refused, saying what to pass instead;
    nothing is computed twice). Without a cluster it is computed here, where it would be
    held anyway. Anything that is not a ``dask.delayed`` is returned as it is.
    """
    if not is_delayed(value):
        return value
    client = _distributed_client()
    if client is None:
        return _own(compute_all(value)[0])
    max_bytes = resolve_gather_limit(max_gather_bytes)
    future = client.compute(value)
    try:
        nbytes = client.submit(_nbytes, future, pure=False).result(timeout=timeout)
        if nbytes > max_bytes:
            from dask.utils import format_bytes

            raise ValueError(
                f"{name} is a dask.delayed whose value holds {format_bytes(nbytes)}, more "
                f"than max_gather_bytes ({format_bytes(max_bytes)}) allows to bring into "
                f"this process. Pass {name} as a dask array (dask.array.from_delayed) or "
                "dask DataFrame (dask.dataframe.from_delayed), which distsk can keep on "
                "the cluster, or raise max_gather_bytes."
            )
        return _own(future.result(timeout=timeout))
    finally:
        future.release()


def _nbytes(value) -> int:
    # Sent by reference: dask's ``sizeof`` dispatcher pickles by value with its cache
    # of every type sized in this process, and a numpy function type in that cache
    # cannot be unpickled by a scheduler in this process (found in a random test order).
    from dask.sizeof import sizeof

    return int(sizeof(value))


def _own(value):
    # Arrays unpickled from workers can sit at odd (even unaligned) addresses in the
    # receive buffer, which sends BLAS down other code paths and changes last bits;
    # a fresh allocation is laid out like the user's own arrays.
    if isinstance(value, np.ndarray) and not value.flags.owndata:
        return np.array(value, order="K", copy=True)
    return value


def gather_inputs(X, y, params: dict):
    """Compute every dask object among ``X, y, params``, block by block into here."""
    keys = list(params)
    computed = gather(X, y, *[params[k] for k in keys])
    X, y, *values = (_own(v) for v in computed)
    return X, y, dict(zip(keys, values))


def inputs_to_read(X, y, params: dict, max_gather_bytes):
    """The inputs as a fit path starts from them: a ``dask.delayed`` X computed (see
    :func:`computed_delayed`), and, when X is then held in memory, y and the fit
    parameters that are or hold dask objects computed too (sklearn cannot read a
    ``dask.delayed``, and reads a dask array through numpy, computing it at every
    access). With X a dask collection they are left to gather or place with X."""
    X = computed_delayed(X, "X", max_gather_bytes)
    from .._decide.profile import profile_input

    if not profile_input(X).lazy and (holds_dask(y) or any(map(holds_dask, params.values()))):
        _, y, params = gather_inputs(None, y, params)
    return X, y, params


def gather(*values):
    """``dask.compute(*values)``, but no block is ever concatenated on a worker.

    ``dask.compute`` on a Dask cluster concatenates a collection's blocks in one
    "finalize" task on a worker, which fails when the data are larger than a worker's
    memory even though this process could hold them. Here each dask array or dataframe
    among ``values`` is computed as its separate blocks: every block travels to this
    process as soon as it is done and is released on the cluster at once (workers hold
    only the blocks not fetched yet, and spill them if they must), and the blocks are
    assembled here -- a dask array with known chunks straight into its final numpy
    array, so this process holds the result plus one block. Other values (and
    everything without a distributed client) go through :func:`compute_all`, which
    pairs every result with its input whatever order dask returns them in.
    """
    client = _distributed_client()
    if client is None:
        return compute_all(*values)
    out = list(values)
    lazy = [i for i, v in enumerate(values) if _is_dask_collection(v)]
    rest = [i for i in range(len(values)) if i not in lazy]
    for i, v in zip(lazy, _gather_blocks(client, [values[i] for i in lazy])):
        out[i] = v
    for i, v in zip(rest, compute_all(*[values[i] for i in rest])):
        out[i] = v
    return tuple(out)


class _Assembly:
    """One collection being received block by block."""

    def __init__(self, collection):
        self.is_array = hasattr(collection, "chunks")
        if self.is_array:
            blocks = collection.to_delayed()
            self.index = list(np.ndindex(blocks.shape))
            self.parts = [blocks[i] for i in self.index]
            self.numblocks = collection.numblocks
        else:  # dask DataFrame / Series: row partitions
            self.parts = list(collection.to_delayed())
            self.index = list(range(len(self.parts)))
        known = self.is_array and not any(
            np.isnan(c) for dim in collection.chunks for c in dim)
        dense = self.is_array and isinstance(getattr(collection, "_meta", None), np.ndarray)
        self.result = np.empty(collection.shape, collection.dtype) if known and dense else None
        self.starts = ([np.concatenate([[0], np.cumsum(c)]).astype(int)
                        for c in collection.chunks] if self.result is not None else None)
        self.pieces: list = [None] * len(self.parts)
        itemsize = getattr(getattr(collection, "dtype", None), "itemsize", 8)
        if self.is_array and known:
            rows = max(collection.chunks[0]) if collection.chunks[0] else 0
            width = max(collection.chunks[1]) if collection.ndim > 1 else 1
            self.block_bytes = int(rows * width * itemsize)
        else:
            self.block_bytes = 0

    def put(self, n, block):
        if self.result is not None:
            at = tuple(slice(self.starts[d][k], self.starts[d][k + 1])
                       for d, k in enumerate(self.index[n]))
            self.result[at] = block
        else:
            self.pieces[n] = block

    def value(self):
        if self.result is not None:
            return self.result
        if not self.is_array:
            return _concatenate(self.pieces) if len(self.pieces) > 1 else self.pieces[0]
        return _assemble(self.pieces, self.index, self.numblocks)


def _holds_arrays(collections) -> bool:
    """Whether the graphs carry in-memory arrays (``da.from_array`` on numpy): those are
    sent once, with every block asked for at once, instead of once per window."""
    for c in collections:
        for task in dict(c.__dask_graph__()).values():
            value = getattr(task, "value", task)
            if getattr(value, "nbytes", 0) > 1 << 20:
                return True
    return False


def _window(client, assemblies) -> int:
    """Blocks asked for at once: a quarter of the workers' memory limit in the largest
    blocks, at least two per worker thread (all of them with no memory limit)."""
    info = client.scheduler_info(n_workers=-1)["workers"].values()
    threads = sum(w.get("nthreads", 1) for w in info) or 1
    memory = sum(w.get("memory_limit") or 0 for w in info)
    block = max((a.block_bytes for a in assemblies), default=0)
    if not memory or not block:
        return 1 << 30
    return max(2 * threads, int(memory * 0.25 // block))


def _gather_blocks(client, collections):
    from distributed import as_completed

    assemblies = [_Assembly(c) for c in collections]
    where = [(a, n) for a in assemblies for n in range(len(a.parts))]
    # One graph per window: shared inputs (y made from X) are computed once per window.
    window = len(where) if _holds_arrays(collections) else _window(client, assemblies)
    order = sorted(range(len(where)), key=lambda i: where[i][1])  # row blocks together
    waiting = as_completed()
    position, live, next_i = {}, [], 0

    def ask(k):
        nonlocal next_i
        batch = order[next_i:next_i + k]
        next_i += len(batch)
        if not batch:
            return
        futures = compute_futures(client, [where[i][0].parts[where[i][1]] for i in batch])
        for f, i in zip(futures, batch):
            position[f.key] = where[i]
            live.append(f)
            waiting.add(f)

    try:
        ask(window)
        for future in waiting:
            assembly, n = position[future.key]
            block = future.result()  # the block's own error, as dask.compute raises it
            future.release()
            assembly.put(n, block)
            del block
            if next_i < len(order) and waiting.count() <= window // 2:
                ask(window - waiting.count())
    finally:
        for f in live:
            f.release()
    return [a.value() for a in assemblies]


def _assemble(pieces, index, numblocks):
    """Blocks of an array whose chunk sizes are unknown (or sparse), in block order."""
    import dask.array.core as dac

    nested = np.empty(numblocks, dtype=object)
    for piece, at in zip(pieces, index):
        nested[at] = piece
    if len(numblocks) == 1:
        return _concatenate(list(nested))
    return dac.concatenate3(nested.tolist())
