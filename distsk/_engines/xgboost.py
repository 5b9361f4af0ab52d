"""xgboost engine: train with xgboost.dask where the data lives, return a plain model.

A worker lost during the training (#23 section 2): the model is checkpointed every k
rounds to the scheduler and the training resumes on the workers left from the last
checkpoint (the checkpoint machinery below is shared with ``xgboost_extmem``;
docs/larger_than_memory.rst, "When a worker dies during boosting").

xgboost is imported only when this engine runs.
"""

from __future__ import annotations

import time
import warnings

from .._cluster.data import compute_all
from .._compat import client_as_current
from ..exceptions import ClusterUnavailableError
from .base import ExecutionContext, Executor

__all__ = ["XGBoostExecutor"]


def _require_xgboost():
    try:
        import xgboost.dask  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "This fit needs xgboost. Install it with `pip install xgboost` (the "
            'distsk[xgboost] extra: `pip install ".[xgboost]"` in the distsk checkout).'
        ) from exc


class XGBoostExecutor(Executor):
    name = "xgboost"

    # Over 60 lines (#22 s7): one linear recipe of xgboost.dask's steps, in their order.
    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        _require_xgboost()
        import xgboost
        from xgboost import dask as dxgb
        from xgboost.collective import Config as CollConfig

        from .dask_ml import _as_dask_array, persisted

        dask_cls = {
            xgboost.XGBClassifier: dxgb.DaskXGBClassifier,
            xgboost.XGBRegressor: dxgb.DaskXGBRegressor,
            xgboost.XGBRanker: dxgb.DaskXGBRanker,
        }.get(type(estimator))
        if dask_cls is None:
            raise TypeError(
                f"{type(estimator).__name__} has no xgboost.dask counterpart; use "
                "XGBClassifier, XGBRegressor or XGBRanker, or gather the data."
            )
        if not hasattr(X, "dask"):
            X = _as_dask_array(X)
        if y is not None and not hasattr(y, "dask"):
            y = _as_dask_array(y)
        X, y = persisted(ctx.client, X, y)  # the boosting rounds read it where it lives
        X, y = _check_input(estimator, X, y)
        params = estimator.get_params()
        total = type(estimator)(**params).get_num_boosting_rounds()
        book = Checkpointed(ctx.client, total, CHECKPOINT_EVERY)
        start, lost_all, timeout = None, [], COLLECTIVE_TIMEOUT
        try:
            while True:
                done = 0 if start is None else int(start["rounds"])
                model = dask_cls(**dict(
                    params, n_estimators=total - done, coll_cfg=CollConfig(timeout=timeout),
                    callbacks=list(params.get("callbacks") or []) +
                    ([book.callback()] if book.enabled else [])))
                more = {} if start is None else {"xgb_model": _booster(start["model"])}
                try:
                    _fit_watched(ctx.client, model, X, y, dict(fit_params, **more))
                    break
                except _TimedOut as slow:
                    # No worker lost: a peer slower than the collective's timeout (it is
                    # short, to end a hung ring in seconds). Resume with twice the time.
                    if timeout >= COLLECTIVE_TIMEOUT_MAX:
                        raise slow.cause from None
                    checkpoint = book.latest()
                    book.stop(list(_workers(ctx.client)), [])
                    if checkpoint is not None and (start is None or
                                                   checkpoint["rounds"] >= start["rounds"]):
                        start = checkpoint
                    timeout = min(2 * timeout, COLLECTIVE_TIMEOUT_MAX)
                    book.timeouts.append(timeout)
                except _Lost as lost:
                    lost_at = time.monotonic()
                    reached, k = book.reached()
                    stop_s = book.stop(lost.left, [])
                    lost_all += lost.gone
                    checkpoint = book.latest()
                    if len(lost_all) > MAX_RECOVERIES or not lost.left:
                        raise ClusterUnavailableError(
                            f"Worker(s) {lost.gone} left the Dask cluster during "
                            f"xgboost.dask's training ({len(lost_all)} lost in this fit, "
                            f"at most {MAX_RECOVERIES} are recovered from); the fit was "
                            "stopped. Fit again once the cluster is stable."
                        ) from lost.cause
                    start = book.record_loss(lost, start, checkpoint, reached, k, stop_s,
                                             lost_at, lost.recomputed)
                    warnings.warn(resume_message(book.recoveries[-1], total, "xgboost.dask"),
                                  RuntimeWarning, stacklevel=2)
            k = book.reached()[1]
        finally:
            book.close()
        # A plain model: same booster, same parameters, picklable, no cluster needed.
        raw = model.get_booster().save_raw(raw_format="ubj")
        plain = type(estimator)(**estimator.get_params())
        plain.load_model(bytearray(raw))
        record_fit(plain, book, k)
        return plain


#: A fixed k (checkpoint every k rounds); None: k from the measured times (the rule);
#: 0: no checkpoints (a lost worker then restarts the training from round 0).
CHECKPOINT_EVERY = None
#: Seconds between the client's checks on the training workers.
POLL_SECONDS = 0.2
#: Seconds a failed training waits for the scheduler to report a lost worker.
LOST_GRACE = 3.0
#: Seconds xgboost's collective waits for a peer in one operation (``dmlc_timeout``) on
#: the xgboost.dask path: short, since a lost peer can leave the survivors' ring blocked
#: (they then fail in this time); a training whose peers are legitimately slower resumes
#: from its checkpoint with twice the time, up to COLLECTIVE_TIMEOUT_MAX (xgboost's 300).
COLLECTIVE_TIMEOUT = 15
COLLECTIVE_TIMEOUT_MAX = 300
#: Seconds a training may go on without a round after a worker left before it is given
#: up as hung (xgboost.dask's own hang: dmlc/xgboost#9419).
STALL_SECONDS = 30.0


class _TimedOut(Exception):
    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


def _timed_out(exc) -> bool:
    text = str(exc)
    return "Timeout, elapsed" in text or "Poll timeout" in text or "timed out" in text


class _Lost(Exception):
    def __init__(self, gone, left, cause, detect_s, recomputed):
        super().__init__(f"lost {gone}")
        self.gone, self.left, self.cause = gone, left, cause
        self.detect_s, self.recomputed = detect_s, recomputed


def _booster(raw: bytes):
    import xgboost

    return xgboost.Booster(model_file=bytearray(raw))


def _workers(client) -> set:
    return set(client.scheduler_info(n_workers=-1)["workers"])


def _fit_watched(client, model, X, y, fit_params) -> None:
    """``model.fit`` (xgboost.dask) in a thread, the client watching the workers: returns
    when it ends, raises ``_Lost`` when a worker holding the data left and the training
    failed (or made no round for ``STALL_SECONDS``): never a hang."""
    import threading

    before = _workers(client)
    try:
        who = client.who_has()
        held = {k: set(who.get(k) or who.get(str(k)) or ()) for k in _keys_of(X)}
    except Exception:
        held = {}
    outcome: dict = {}

    def run():
        try:
            with client_as_current(client):
                model.fit(X, y, **fit_params)
            outcome["ok"] = True
        except BaseException as exc:  # noqa: BLE001 (handed to the client's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="distsk-xgboost-dask-fit", daemon=True)
    thread.start()
    gone_at = None
    while True:
        thread.join(POLL_SECONDS)
        now = _workers(client)
        gone = sorted(before - now)
        if gone and gone_at is None:
            gone_at = time.monotonic()
        if not thread.is_alive():
            if "ok" in outcome:
                return
            # A peer's death reaches the survivors' collective about when it reaches
            # the scheduler: give the scheduler a moment to tell which it was.
            waited = time.monotonic()
            while not gone and time.monotonic() - waited < LOST_GRACE:
                time.sleep(POLL_SECONDS)
                now = _workers(client)
                gone = sorted(before - now)
                gone_at = gone_at or time.monotonic()
            if gone:
                recomputed = sum(1 for h in held.values() if h and h <= set(gone))
                raise _Lost(gone, sorted(now), outcome["error"],
                            time.monotonic() - gone_at, recomputed)
            if _timed_out(outcome["error"]):
                raise _TimedOut(outcome["error"])
            raise outcome["error"]
        if gone and time.monotonic() - gone_at > STALL_SECONDS:
            raise ClusterUnavailableError(
                f"Worker(s) {gone} left the Dask cluster during xgboost.dask's training "
                f"and the training made no progress for {STALL_SECONDS:.0f} s (xgboost.dask "
                "hangs on some losses: dmlc/xgboost#9419); the fit was stopped. Fit again "
                "once the cluster is stable."
            )


def _keys_of(X) -> list:
    try:
        return [b.key for b in X.to_delayed().ravel()]
    except Exception:
        try:
            return [b.key for b in X.to_delayed()]
        except Exception:
            return []


def resume_message(rec: dict, total: int, what: str) -> str:
    """The warning a resumed training gives."""
    recomputed = (f"; {rec['blocks_recomputed']} block(s) of X held only by the lost worker "
                  "are recomputed from their graph (data Dask cannot recompute, scattered, "
                  "would fail the fit: reload it)" if rec["blocks_recomputed"] else "")
    return (f"Worker(s) {rec['lost']} left the Dask cluster during {what}'s training at "
            f"round {rec['rounds_reached']} of {total}: resumed on the workers left from "
            f"the checkpoint of round {rec['resumed_from']} ({rec['redone']} round(s) "
            f"redone, checkpoints every {rec['k']}){recomputed}.")


def _check_input(estimator, X, y, found=None):
    """Raise what the plain xgboost model's ``fit`` raises, before xgboost.dask starts.

    xgboost.dask does not check y's classes or length itself, and bad values fail in
    whichever worker holds them while the others report a broken allreduce (a C++
    trace). Classes, infinite X and NaN or infinite y are checked here (one pass) and
    raised by the plain model itself on a two-row stand-in with the same defect, so the
    error is its own; a length mismatch gets xgboost's error type with a sentence.
    """
    import numpy as np
    import xgboost

    if y is None:
        return X, y
    if hasattr(X, "compute_chunk_sizes") and any(np.isnan(n) for n in X.shape):
        X = X.compute_chunk_sizes()
    if hasattr(y, "compute_chunk_sizes") and any(np.isnan(n) for n in y.shape):
        y = y.compute_chunk_sizes()
    n_x, n_y = X.shape[0], y.shape[0]
    if isinstance(n_x, int | np.integer) and isinstance(n_y, int | np.integer) and n_x != n_y:
        raise xgboost.core.XGBoostError(
            f"Invalid size for `label`: y has {n_y} rows and X has {n_x}; pass one label "
            "per row of X (were X and y filtered or split the same way?)."
        )
    import dask.array as da

    plain = type(estimator)(**estimator.get_params())
    n_features = len(X.columns) if hasattr(X, "columns") else (X.shape[1] if X.ndim == 2 else 1)
    classifier = isinstance(estimator, xgboost.XGBClassifier)
    x_inf = isinstance(X, da.Array) and X.dtype.kind == "f" and plain.missing != np.inf
    y_bad = isinstance(y, da.Array) and y.dtype.kind == "f"
    # One pass over the data for every check.
    classes, x_has_inf, y_has_nan, y_has_inf = compute_all(
        (y.unique() if hasattr(y, "unique") else da.unique(y)) if classifier else None,
        da.isinf(X).any() if x_inf else False,
        da.isnan(y).any() if y_bad else False, da.isinf(y).any() if y_bad else False,
    )
    if classifier:
        classes = np.unique(np.asarray(classes))
        if found is not None:  # the caller's dict receives the classes of y
            found["classes"] = classes
        expected = np.arange(len(classes))
        if classes.shape != expected.shape or not (classes == expected).all():
            # The plain model checks classes first thing in fit: its own ValueError.
            plain.fit(np.zeros((len(classes), n_features)), classes)
    # Infinite X, NaN or infinite y fail in whichever worker holds them first, while the
    # others report a broken allreduce: raise the plain model's error instead.
    if x_has_inf or y_has_nan or y_has_inf:
        X1, y1 = np.zeros((2, n_features)), np.array([0.0, 1.0])
        if x_has_inf:
            X1[0, 0] = np.inf
        y1[0] = np.nan if y_has_nan else np.inf if y_has_inf else 0.0
        plain.fit(X1, y1)
    return X, y


# ----------------------------------------------------------------- checkpoints (#23 s2)
# A distributed training keeps its model on the client's side of the cluster every k
# rounds, so that a lost worker costs at most k rounds: rank 0 stores the model's bytes
# in a Dask Variable on the scheduler (one value, the latest: bounded memory, never a
# worker's disk); every rank keeps its round count in its process, which the client
# asks the survivors for when a worker is lost (no message per round). k follows the
# measured times: after each checkpoint, k = ceil(checkpoint seconds / (BUDGET x median
# round seconds)), so that checkpoints take at most BUDGET of the training.

#: The share of the training time checkpoints may take (the rule for k).
CHECKPOINT_BUDGET = 0.02
#: Worker losses one fit recovers from (the fit fails at the next one).
MAX_RECOVERIES = 3
#: Seconds the client waits for the survivors' training threads to end after a loss.
STOP_WAIT = 30.0
#: Seconds after which a survivor whose training thread still runs (blocked in the
#: collective) has its worker process restarted.
STOP_GRACE = 5.0

#: In a worker process: the trainings told to stop (their tags), and those running.
_STOPPED: set = set()
_RUNNING: dict = {}
#: In a worker process: {training run: (rounds reached, k then)}, kept by every rank
#: (the ranks advance in step), read by the client when a worker is lost.
_REACHED: dict = {}


class TrainingStopped(RuntimeError):
    """Raised in a survivor's training when the client has given its collective up."""


def _stop_on_worker(tag: str) -> None:
    _STOPPED.add(tag)


def _forget_on_worker(tag: str) -> None:
    for run in [r for r in _STOPPED if r.split("/")[0] == tag]:
        _STOPPED.discard(run)
    for run in [r for r in _REACHED if r.split("/")[0] == tag]:
        _REACHED.pop(run, None)


def _rounds_on_worker() -> int:
    """The most rounds any distsk training in this worker process has reached (0: none
    running or kept)."""
    return max((r for r, _ in list(_REACHED.values())), default=0)


def _reached_on_worker(tag: str) -> list:
    """[(rounds, k)] of fit ``tag``'s trainings in this worker process."""
    return [v for r, v in list(_REACHED.items()) if r.split("/")[0] == tag]


def _running_on_worker(dask_worker=None) -> list:
    """The distsk trainings whose threads still run in this worker process: registered
    by the training task itself (until it returns), or by the checkpoint callback while
    its thread still runs the task it registered from (xgboost.dask's)."""
    active = getattr(dask_worker, "active_threads", None) or {}
    out = set()
    for tid, (run, key) in list(_RUNNING.items()):
        if key is None or active.get(tid) == key:
            out.add(run)
        else:
            _RUNNING.pop(tid, None)  # its task ended (with the collective's error)
    return sorted(out)


def _register(run: str, key=None) -> None:
    import threading

    _RUNNING[threading.get_ident()] = (run, key)


def _unregister() -> None:
    import threading

    _RUNNING.pop(threading.get_ident(), None)


# Over 60 lines (#22 s7): the callback class is defined inside, to be pickled by value.
def _checkpoints(run: str, total: int, every: int | None = None):
    """A ``TrainingCallback`` (made on the worker or pickled by value to it) keeping the
    checkpoints of training ``run`` ("fit tag/attempt"); ``every``: a fixed k (None: from
    the measured times)."""
    import asyncio
    import math
    import statistics
    import threading
    import time as _time

    import xgboost

    class Checkpoints(xgboost.callback.TrainingCallback):
        def __init__(self):
            super().__init__()
            self.run, self.tag = run, run.split("/")[0]
            self.total, self.every = total, every

        def before_training(self, model):
            from xgboost import collective

            from distsk._engines import xgboost as engine  # the worker's module

            self.rank = collective.get_rank() if collective.is_distributed() else 0
            self.k = self.every or 1  # the first checkpoint measures its own cost
            self.next = model.num_boosted_rounds() + self.k
            self.rounds_s: list = []
            self.worker = self.sending = None
            try:
                from distributed import get_worker

                self.worker = get_worker()
                key = self.worker.active_threads.get(threading.get_ident())
            except (ImportError, ValueError):
                key = None
            if key is not None:  # in a task of its own (xgboost.dask's), else the task's
                engine._register(self.run, key)
            self.t = _time.perf_counter()
            return model

        def after_training(self, model):
            from distsk._engines import xgboost as engine

            engine._unregister()
            return model

        def after_iteration(self, model, epoch, evals_log) -> bool:
            from distsk._engines import xgboost as engine

            if self.run in engine._STOPPED:
                raise engine.TrainingStopped(f"training {self.run} stopped: a peer was lost")
            self.rounds_s.append(_time.perf_counter() - self.t)
            rounds = model.num_boosted_rounds()
            if self.worker is not None and self.rank == 0:
                # One checkpoint travels at a time (the next waits for the previous).
                if self.next <= rounds < self.total and \
                        (self.sending is None or self.sending.done()):
                    t0 = _time.perf_counter()
                    raw = bytes(model.save_raw(raw_format="ubj"))
                    cost = _time.perf_counter() - t0  # what the rounds wait for
                    if self.every is None:
                        per_round = max(statistics.median(self.rounds_s[-25:]), 1e-6)
                        self.k = max(1, math.ceil(cost / (engine.CHECKPOINT_BUDGET *
                                                          per_round)))
                    self.next = rounds + self.k
                    # k: the rounds until the next checkpoint (at most this many redone).
                    value = {"rounds": rounds, "k": self.k, "model": raw}
                    # Sent by the worker's event loop while the next rounds train.
                    self.sending = asyncio.run_coroutine_threadsafe(
                        self.worker.scheduler.variable_set(name=f"{self.tag}-model",
                                                           data=value),
                        self.worker.loop.asyncio_loop)
            engine._REACHED[self.run] = (rounds, self.k)  # no message: read when needed
            self.t = _time.perf_counter()
            return False

    return Checkpoints()


def _kill_pid(pid: int) -> None:
    import os
    import signal

    os.kill(pid, signal.SIGKILL)


def _kill_workers(client, workers) -> None:
    """SIGKILL the processes of ``workers`` from their nannies (which start new ones):
    the only way to end a thread blocked in xgboost's C++ collective."""
    import os

    try:
        pids = client.run(os.getpid, workers=list(workers), on_error="ignore")
    except Exception:
        return
    for worker, pid in pids.items():
        if isinstance(pid, int):
            try:
                client.run(_kill_pid, pid, workers=[worker], nanny=True, on_error="ignore")
            except Exception:
                pass


class Checkpointed:
    """The client's side of one fit's checkpoints: the latest model kept on the
    scheduler, the rounds reached, and what each recovery cost."""

    def __init__(self, client, total: int, every: int | None = None):
        import uuid

        self.client, self.total, self.every = client, total, every
        self.tag = f"distsk-xgb-{uuid.uuid4().hex[:10]}"
        self.recoveries: list = []
        self.timeouts: list = []  # the collective's timeouts raised after slow peers
        self.restarted: list = []  # survivors restarted at the last loss (thread blocked)
        self.attempt = 0

    @property
    def run(self) -> str:
        """This attempt's name on the workers (its stop flag)."""
        return f"{self.tag}/{self.attempt}"

    @property
    def enabled(self) -> bool:
        """False with ``every=0`` (no checkpoints: what the benchmark compares with)."""
        return self.every != 0

    def callback(self):
        return _checkpoints(self.run, self.total, self.every)

    def record_loss(self, lost, start, checkpoint, reached, k, stop_s, lost_at,
                    recomputed) -> dict | None:
        """Record one recovery in ``recoveries``; the checkpoint to resume from (the
        later of ``start`` and ``checkpoint``)."""
        if checkpoint is not None and (start is None or
                                       checkpoint["rounds"] >= start["rounds"]):
            start = checkpoint
        resumed = 0 if start is None else int(start["rounds"])
        self.recoveries.append({
            "lost": list(lost.gone), "rounds_reached": reached,
            "resumed_from": resumed, "redone": max(0, reached - resumed),
            "k": k, "stop_seconds": round(stop_s, 3),
            "restarted": list(self.restarted),
            "detect_seconds": round(lost.detect_s, 3),
            "blocks_recomputed": recomputed,
            "recover_seconds": round(time.monotonic() - lost_at, 3),
        })
        return start

    def latest(self) -> dict | None:
        """The last checkpoint the scheduler received: {"rounds", "k", "model"}."""
        from distributed import Variable

        try:
            value = Variable(f"{self.tag}-model", client=self.client).get(timeout=1)
        except (TimeoutError, Exception):  # never set: no checkpoint yet
            return None
        return value if isinstance(value, dict) else None

    def reached(self) -> tuple[int, int]:
        """(the most rounds a training worker reached, k: the rounds between the last
        checkpoint and the next), the rounds asked of the workers present (the ranks
        advance in step: a survivor's count is the lost worker's, within a round), k
        from the last checkpoint (1 before the first: it follows round 1)."""
        try:
            found = self.client.run(_reached_on_worker, self.tag, on_error="ignore")
        except Exception:
            found = {}
        pairs = [tuple(p) for v in found.values() if isinstance(v, list) for p in v]
        rounds = max((r for r, _ in pairs), default=0)
        last = self.latest()
        return int(rounds), int(last["k"] if last else (self.every or 1))

    def stop(self, workers, futures, timeout: float = STOP_WAIT) -> float:
        """Tell the training threads on ``workers`` to stop, wait (at most ``timeout``)
        until none of this fit's runs; the seconds that took."""
        import time

        started = time.monotonic()
        run = self.run
        self.attempt += 1  # the next attempt runs under a new name
        try:
            self.client.run(_stop_on_worker, run, workers=list(workers),
                            on_error="ignore")
        except Exception:
            pass
        self.restarted = []
        while time.monotonic() - started < timeout:
            pending = [f for f in futures if f.status == "pending"]
            try:
                running = self.client.run(_running_on_worker, workers=list(workers),
                                          on_error="ignore")
            except Exception:
                running = {}
            still = [w for w, tags in running.items() if isinstance(tags, list)
                     and run in tags]
            if not still and not pending:
                break
            if still and not self.restarted and time.monotonic() - started > STOP_GRACE:
                # A survivor's thread blocked in xgboost's collective (C++: no flag or
                # exception reaches it; its timeout does not always fire): restart that
                # worker's process (its nanny starts a new one; Dask recomputes the data
                # it held from their graph), else it would hold its thread and block the
                # resumed training.
                self.restarted = list(still)
                _kill_workers(self.client, self.restarted)
                workers = [w for w in workers if w not in self.restarted]
                for f in futures:
                    f.cancel()
                futures = []
            time.sleep(0.2)
        return time.monotonic() - started

    def close(self) -> None:
        from distributed import Variable

        try:
            Variable(f"{self.tag}-model", client=self.client).delete()
            self.client.run(_forget_on_worker, self.tag, on_error="ignore")
        except Exception:
            pass

    def summary(self) -> dict:
        return {"recoveries": list(self.recoveries),
                "n_rounds_redone": sum(r["redone"] for r in self.recoveries)}


def record_fit(model, checkpointed: Checkpointed, k: int) -> None:
    """The fitted model's account of its worker losses (the counts the tests read)."""
    summary = checkpointed.summary()
    model.worker_losses_ = summary["recoveries"]
    model.n_rounds_redone_ = summary["n_rounds_redone"]
    model.checkpoint_every_ = k
