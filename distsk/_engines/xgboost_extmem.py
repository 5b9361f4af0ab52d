"""xgboost beyond the workers' memory: external-memory training on every worker.

xgboost.dask needs the whole training set in the workers' memory (its ``DaskDMatrix``
persists every partition). xgboost itself trains from external memory: an
``ExtMemQuantileDMatrix`` reads batches from a ``xgboost.DataIter`` and keeps only the
quantised pages, cached on disk. This engine runs that on a Dask cluster, as xgboost's
own distributed external-memory tests do (``tests/test_distributed/test_with_dask/
test_external_memory.py``; tutorial "external_memory", "Distributed Training"):

- the dask collection's row blocks are split into one contiguous share per worker;
- one task per worker, pinned there (``workers=[address]``, no other worker allowed),
  joins xgboost's collective (``xgboost.collective.CommunicatorContext``, a
  ``RabitTracker`` started on the scheduler as xgboost.dask does) and builds an
  ``ExtMemQuantileDMatrix`` over a ``DataIter`` that computes its blocks one at a time
  from the dask graph (files, generators, persisted data: whatever the graph holds),
  the next block computing while xgboost reads the current one;
- ``xgboost.train`` runs the boosting rounds with the histograms all-reduced across the
  workers; every worker ends with the same booster, rank 0's is returned.

Limits: ``tree_method`` "hist" only (the only method external memory has), CPU only,
no evaluation sets, callbacks, custom objectives or metrics, early stopping or
categorical data (each is refused naming it); y (and sample_weight) travel with their
row blocks.

A worker lost during training (#23 section 2): rank 0 stores the model's bytes on the
scheduler every k rounds (a Dask Variable; ``Checkpointed`` in ``.xgboost``; k from the
measured round and save times, so that checkpoints cost at most ``CHECKPOINT_BUDGET`` of
the training). The survivors' collective fails at the lost peer's closed sockets (xgboost
raises "Encountered EOF" within a second) and a stop flag set on every worker ends any
task still reading its blocks; then the training resumes on the workers left from the
last checkpoint (``xgb_model=``, ``n - r`` rounds): at most k rounds are redone and the
model has the rounds asked. Every worker re-reads its new share, so blocks the lost
worker held are recomputed from their graph (a warning says how many); blocks Dask cannot
recompute (scattered data) end the fit with ``ClusterUnavailableError`` saying to reload
them (untested). With no worker left, or after ``MAX_RECOVERIES`` losses, the fit fails with
``ClusterUnavailableError`` naming the workers lost.
"""

from __future__ import annotations

import time
import uuid
import warnings

from .._cluster.data import compute_futures
from .._decide.xgboost_rules import check_external_memory_params
from ..exceptions import ClusterUnavailableError
from . import xgboost as xgb_engine
from .base import ExecutionContext, Executor
from .xgboost import _check_input, _require_xgboost

__all__ = ["XGBoostExternalMemoryExecutor", "TRAIN_TIMEOUT"]

#: Seconds the collective waits for a peer in one operation (xgboost's ``dmlc_timeout``)
#: and the tracker for the workers to join: a lost worker ends the fit, never a hang.
COLLECTIVE_TIMEOUT = 300
#: Seconds between the client's checks that every training worker is still there.
POLL_SECONDS = 0.5
#: Seconds a failed training task waits for the scheduler to report a lost worker.
LOST_GRACE = 3.0
#: Seconds a whole training may take before the fit is abandoned (None: no limit).
TRAIN_TIMEOUT = None

class _Blocks:
    """Row blocks as dask Delayed objects, kept opaque so ``submit`` does not compute them."""

    def __init__(self, parts):
        self.parts = parts  # [(x, y, weight or None), ...] Delayed


def _start_tracker(n_workers: int, host: str | None, timeout: int) -> dict:
    """On the scheduler: a RabitTracker for ``n_workers`` ranks; its worker arguments."""
    import threading

    from xgboost.tracker import RabitTracker

    tracker = RabitTracker(n_workers=n_workers, host_ip=host, sortby="task", timeout=timeout)
    tracker.start()
    threading.Thread(target=tracker.wait_for, daemon=True).start()
    return tracker.worker_args()


def _train_on_worker(rank: int, blocks: _Blocks, params: dict, n_rounds: int,
                     comm_args: dict, missing, tag: str | None = None, total: int = 0,
                     start: bytes | None = None, every: int | None = None) -> dict | None:
    """One worker's share: external-memory matrix over its blocks, collective training
    of ``n_rounds`` rounds from ``start`` (a checkpoint's bytes, or None), checkpointed
    under ``tag`` (``total``: the rounds asked; ``every``: a fixed k, None to measure)."""
    import os
    import shutil
    import tempfile
    import threading

    import xgboost
    from distributed import get_worker, worker_client

    from . import xgboost as xgb_engine

    worker = get_worker()
    n_threads = worker.state.nthreads
    local = dict(params, nthread=n_threads, n_jobs=n_threads)
    cache = tempfile.mkdtemp(prefix="distsk-xgb-extmem-", dir=worker.local_directory)
    me = threading.get_ident()
    if tag is not None:
        xgb_engine._RUNNING[me] = (tag, None)  # until this task returns
    try:
        # Seceded: the blocks compute on worker threads, this one included.
        with worker_client() as client, \
                xgboost.collective.CommunicatorContext(
                    dmlc_task_id=f"[distsk-{rank:06d}]", **comm_args):
            it = _block_iter(client, blocks.parts, os.path.join(cache, "cache"), tag)
            Xy = xgboost.ExtMemQuantileDMatrix(it, missing=missing, nthread=n_threads,
                                               max_bin=local.get("max_bin") or 256)
            callbacks = [] if tag is None else [xgb_engine._checkpoints(tag, total, every)]
            booster = xgboost.train(local, Xy, num_boost_round=n_rounds, verbose_eval=False,
                                    xgb_model=None if start is None else bytearray(start),
                                    callbacks=callbacks)
            it.reset()
            raw = booster.save_raw(raw_format="ubj")
            del Xy, booster
    finally:
        xgb_engine._RUNNING.pop(me, None)
        shutil.rmtree(cache, ignore_errors=True)
    return {"rank": rank, "booster": bytes(raw)}


def _block_iter(client, parts, prefix, tag=None):
    """An ``xgboost.DataIter`` over the row blocks ``parts``, computed one at a time by
    ``client`` (the next one computing while xgboost reads the current one), its pages
    cached at ``prefix``. Made on the worker: xgboost is imported there."""
    import numpy as np
    import xgboost

    from .xgboost import _STOPPED, TrainingStopped

    class BlockIter(xgboost.DataIter):
        def __init__(self):
            super().__init__(cache_prefix=prefix, release_data=True)
            self._i, self._ahead = 0, None

        def _compute(self, i):
            return compute_futures(client, [p for p in parts[i] if p is not None])

        def next(self, input_data) -> bool:
            if tag is not None and tag in _STOPPED:  # a peer was lost: read no further
                raise TrainingStopped(f"training {tag} stopped: a peer was lost")
            if self._i >= len(parts):
                return False
            futures = self._ahead if self._ahead is not None else self._compute(self._i)
            self._ahead = None
            X, y, *w = client.gather(futures)
            w = w[0] if w else None
            for f in futures:
                f.release()
            if self._i + 1 < len(parts):  # the next block computes meanwhile
                self._ahead = self._compute(self._i + 1)
            # DataFrames as they are: xgboost records their column names, as in fit.
            input_data(data=X if hasattr(X, "columns") else np.asarray(X), label=np.asarray(y),
                       weight=None if w is None else np.asarray(w))
            self._i += 1
            return True

        def reset(self) -> None:
            for f in self._ahead or ():
                f.release()
            self._ahead = None
            self._i = 0

    return BlockIter()


def _row_blocks(X, y, w):
    """Delayed row blocks of X with y's (and w's) rows aligned to them."""
    import dask.array as da

    if hasattr(X, "npartitions") and not hasattr(X, "chunks"):  # dask DataFrame
        divisions = None
        xs = X.to_delayed()
        lengths = None
        if hasattr(y, "npartitions") and y.npartitions == X.npartitions:
            ys = y.to_delayed()
        else:
            lengths = X.map_partitions(len).compute()
            divisions = tuple(int(n) for n in lengths)
            ys = _as_array(y).rechunk((divisions,)).to_delayed().ravel().tolist()
        if w is None:
            ws = [None] * len(xs)
        elif hasattr(w, "npartitions") and w.npartitions == X.npartitions:
            ws = w.to_delayed()
        else:
            if divisions is None:
                divisions = tuple(int(n) for n in X.map_partitions(len).compute())
            ws = _as_array(w).rechunk((divisions,)).to_delayed().ravel().tolist()
        return list(zip(xs, ys, ws))
    X = _as_array(X)
    if X.ndim == 2 and X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    rows = X.chunks[0]
    y = _as_array(y)
    y = y.rechunk((rows,) + tuple((n,) for n in y.shape[1:]))
    xs = X.to_delayed().ravel().tolist()
    ys = y.to_delayed().ravel().tolist() if y.ndim == 1 else y.to_delayed()[:, 0].tolist()
    if w is None:
        ws = [None] * len(xs)
    else:
        ws = _as_array(w).rechunk((rows,)).to_delayed().ravel().tolist()
    del da
    return list(zip(xs, ys, ws))


def _as_array(v):
    import dask.array as da
    import numpy as np

    if isinstance(v, da.Array):
        return v
    if hasattr(v, "to_dask_array"):
        return v.to_dask_array(lengths=True)
    return da.from_array(np.asarray(v), chunks=-1)


def _where_held(client, parts: list, workers: list) -> dict | None:
    """``{worker: its blocks}`` when every X block is already in a worker's memory
    (persisted), in ``workers`` order; None otherwise (blocks still to compute)."""
    keys = [getattr(x, "key", None) for x, _, _ in parts]
    if any(k is None for k in keys):
        return None
    who = client.who_has()  # every key held (it takes futures, not keys)
    held = [who.get(k) or who.get(str(k)) for k in keys]
    if not all(held):
        return None
    by: dict = {w: [] for w in workers}
    for part, holders in zip(parts, held):
        by.setdefault(holders[0], []).append(part)
    return {w: share for w, share in by.items() if share}


def _shares(parts: list, n_workers: int) -> list[list]:
    """Contiguous shares of the blocks, one per worker, sizes differing by at most one."""
    n = min(n_workers, len(parts))
    q, r = divmod(len(parts), n)
    out, start = [], 0
    for i in range(n):
        stop = start + q + (1 if i < r else 0)
        out.append(parts[start:stop])
        start = stop
    return out


class XGBoostExternalMemoryExecutor(Executor):
    name = "xgboost-external-memory"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        _require_xgboost()
        _require_trainable(estimator)
        dtypes = getattr(X, "dtypes", None)
        numeric = dtypes is None or not any(str(t) == "category" for t in
                                            getattr(dtypes, "values", [dtypes]))
        # What only the data and the fit's arguments tell (categorical columns, fit
        # parameters); the model's settings, checked when planning, again (no cluster
        # work yet: a plan made by hand gets the same refusal).
        check_external_memory_params(estimator, fit_params, numeric=numeric)
        client = ctx.client
        if y is None:
            raise ValueError(f"{type(estimator).__name__}.fit needs y; got y=None.")
        if not hasattr(X, "dask"):
            X = _as_array(X)
        if not hasattr(y, "dask"):
            y = _as_array(y)
        found: dict = {}
        X, y = _check_input(estimator, X, y, found)  # the plain model's errors, one pass
        plain = type(estimator)(**estimator.get_params())
        params = _booster_params(estimator, plain, found)
        parts = _row_blocks(X, y, fit_params.get("sample_weight"))
        total = plain.get_num_boosting_rounds()
        book = xgb_engine.Checkpointed(client, total, CHECKPOINT_EVERY)
        start, lost_all, k = None, [], CHECKPOINT_EVERY or 1
        try:
            while True:
                workers, shares = _placed(client, parts)
                done = 0 if start is None else int(start["rounds"])
                futures = _start_training(client, workers, shares, params, plain, book,
                                          start, total - done)
                try:
                    result = _wait(client, futures, workers, parts)
                    break
                except _WorkerLost as lost:
                    lost_at = time.monotonic()
                    reached, k = book.reached()
                    left = [w for w in workers if w not in lost.gone]
                    stop_s = book.stop(left, [f for w, f in zip(workers, futures)
                                              if w in left])
                    lost_all += lost.gone
                    checkpoint = book.latest()
                    if len(lost_all) > MAX_RECOVERIES or not _gone_ok(client):
                        raise _lost_error(lost.gone, workers, lost_all, checkpoint,
                                          recovered=False) from lost.cause
                    start = book.record_loss(lost, start, checkpoint, reached, k, stop_s,
                                             lost_at, _held_only_by(lost.held, lost.gone))
                    warnings.warn(_resume_message(book.recoveries[-1], total), RuntimeWarning,
                                  stacklevel=2)
                finally:
                    for f in futures:
                        f.cancel()
            k = book.reached()[1]
        finally:
            book.close()
        out = type(estimator)(**estimator.get_params())
        out.load_model(bytearray(result["booster"]))
        xgb_engine.record_fit(out, book, k)
        return out


#: A fixed k (checkpoint every k rounds); None: k from the measured times (the rule);
#: 0: no checkpoints (a lost worker then restarts the training from round 0).
CHECKPOINT_EVERY = None
#: Worker losses one fit resumes from (the next one fails the fit).
MAX_RECOVERIES = 3


class _WorkerLost(Exception):
    def __init__(self, gone, cause, detect_s, held):
        super().__init__(f"lost {gone}")
        self.gone, self.cause, self.detect_s, self.held = gone, cause, detect_s, held


def _gone_ok(client) -> bool:
    return bool(client.scheduler_info(n_workers=-1)["workers"])


def _held_only_by(held: dict | None, gone: list) -> int:
    """How many of the blocks held in memory (persisted) were held only by ``gone``."""
    if not held:
        return 0
    return sum(1 for holders in held.values() if holders and set(holders) <= set(gone))


def _resume_message(rec: dict, total: int) -> str:
    recomputed = (f"; {rec['blocks_recomputed']} persisted block(s) held only by the lost "
                  "worker are recomputed from their graph" if rec["blocks_recomputed"] else "")
    return (f"Worker(s) {rec['lost']} left the Dask cluster during xgboost's distributed "
            f"training at round {rec['rounds_reached']} of {total}: resumed on the workers "
            f"left from the checkpoint of round {rec['resumed_from']} ({rec['redone']} "
            f"round(s) redone, checkpoints every {rec['k']}); every worker re-reads its new "
            f"share of the blocks{recomputed}.")


def _lost_error(gone, workers, lost_all, checkpoint, recovered) -> ClusterUnavailableError:
    at = "" if checkpoint is None else f" (last checkpoint: round {checkpoint['rounds']})"
    return ClusterUnavailableError(
        f"Worker(s) {gone} left the Dask cluster during xgboost's external-memory "
        f"training on {len(workers)} workers{at}, after {len(lost_all) - 1} earlier "
        f"loss(es); no worker is left or more than {MAX_RECOVERIES} were lost, so the fit "
        "was stopped (the other workers' tasks are cancelled). Fit again once the cluster "
        "is stable."
    )


def _lost_data(exc) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return "lost" in text.lower() and ("dependenc" in text.lower() or
                                        "Cancelled" in type(exc).__name__)


def _require_trainable(estimator) -> None:
    import xgboost

    if not isinstance(estimator, xgboost.XGBClassifier | xgboost.XGBRegressor) or \
            isinstance(estimator, xgboost.XGBRFClassifier | xgboost.XGBRFRegressor):
        raise TypeError(
            f"{type(estimator).__name__} has no external-memory training here; use "
            "XGBClassifier or XGBRegressor, or gather the data."
        )


def _booster_params(estimator, plain, found: dict) -> dict:
    """``xgboost.train``'s parameters for ``estimator`` (``found``: y's classes)."""
    import xgboost

    params = plain.get_xgb_params()
    for key in ("n_jobs", "nthread", "missing", "n_estimators"):
        params.pop(key, None)
    if isinstance(estimator, xgboost.XGBClassifier):
        # As xgboost.dask's classifier sets them from y's classes.
        n_classes = len(found["classes"])
        if n_classes > 2:
            params["objective"], params["num_class"] = "multi:softprob", n_classes
        else:
            params["objective"] = "binary:logistic"
    if params.get("max_bin") is None:
        params.pop("max_bin", None)
    params["tree_method"] = "hist"
    return params


def _placed(client, parts) -> tuple[list, list]:
    """The training workers and each one's blocks: where persisted blocks are, else
    contiguous shares in the order xgboost.dask ranks workers (by name), so that the
    same blocks on the same workers give the same model."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    workers = sorted(info, key=lambda a: (str(info[a].get("name", a)), a))
    if not workers:
        raise ClusterUnavailableError(
            f"The Dask cluster at {client.scheduler.address} has no workers. Start "
            "workers (`dask worker <address>`) or gather the data."
        )
    placed = _where_held(client, parts, workers)
    if placed is not None:  # persisted blocks train where they are, as xgboost.dask does
        return list(placed), list(placed.values())
    shares = _shares(parts, len(workers))
    return workers[:len(shares)], shares


def _start_training(client, workers, shares, params, plain, book=None, start=None,
                    n_rounds=None) -> list:
    """A tracker on the scheduler, then one training task pinned to each worker,
    training ``n_rounds`` from checkpoint ``start`` (None: from scratch)."""
    from distributed import comm

    try:
        host = comm.get_address_host(client.scheduler.address).strip("/:")
    except Exception:
        host = None
    comm_args = client.run_on_scheduler(_start_tracker, len(workers), host,
                                        COLLECTIVE_TIMEOUT)
    comm_args = dict(comm_args, dmlc_timeout=COLLECTIVE_TIMEOUT)
    tag = uuid.uuid4().hex[:8]
    return [
        client.submit(_train_on_worker, rank, _Blocks(share), params,
                      plain.get_num_boosting_rounds() if n_rounds is None else n_rounds,
                      comm_args, plain.missing,
                      None if book is None or not book.enabled else book.run,
                      plain.get_num_boosting_rounds(),
                      None if start is None else start["model"],
                      None if book is None else book.every,
                      workers=[address], allow_other_workers=False, pure=False,
                      retries=0, key=f"distsk-xgboost-extmem-{tag}-{rank}")
        for rank, (address, share) in enumerate(zip(workers, shares))
    ]


def _gone(client, workers) -> list:
    present = set(client.scheduler_info(n_workers=-1)["workers"])
    return [w for w in workers if w not in present]


def _wait(client, futures, workers, parts=()):
    """Rank 0's result; ``_WorkerLost`` if a training worker left (whatever the other
    tasks then raise: the collective broken by the lost peer), else the first task error
    as it was raised."""
    started = time.monotonic()
    held = _held_keys(client, parts)
    while True:
        failed = next((f for f in futures if f.status == "error"), None)
        gone = _gone(client, workers)
        # A peer's death reaches the survivors' collective about when it reaches the
        # scheduler: give the scheduler a moment to tell which it was.
        waited = time.monotonic()
        while failed is not None and not gone and time.monotonic() - waited < LOST_GRACE:
            time.sleep(POLL_SECONDS)
            gone = _gone(client, workers)
        if gone:
            cause = failed.exception() if failed is not None else None
            if cause is not None and _lost_data(cause):
                raise ClusterUnavailableError(
                    f"Worker(s) {gone} left the Dask cluster during xgboost's external-memory "
                    "training and held data Dask cannot recompute (scattered, or persisted "
                    f"without its graph): {cause}. Reload that data (scatter or persist it "
                    "again) and fit again."
                ) from cause
            raise _WorkerLost(gone, cause, time.monotonic() - waited, held)
        if failed is not None:
            failed.result()  # raises the task's own exception
        if all(f.status == "finished" for f in futures):
            return futures[0].result()
        if TRAIN_TIMEOUT is not None and time.monotonic() - started > TRAIN_TIMEOUT:
            raise TimeoutError(
                f"xgboost's external-memory training took over {TRAIN_TIMEOUT} s; stopped."
            )
        time.sleep(POLL_SECONDS)


def _held_keys(client, parts) -> dict:
    """{key: [workers holding it]} of the blocks in the workers' memory (persisted) when
    the training started (to tell which blocks a lost worker held alone)."""
    keys = {str(k) for k in (getattr(x, "key", None) for x, _, _ in parts) if k is not None}
    if not keys:
        return {}
    try:
        return {k: list(v) for k, v in client.who_has().items() if str(k) in keys and v}
    except Exception:
        return {}
