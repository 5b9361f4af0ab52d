"""What storing each fit as it ends costs, per fit, against a 50 ms fit (issue #23 s1).

Each finished fit now travels on the result stream and is put into the checkpoint as
it arrives. Measured here, each as the median of REPEATS runs of N fits:

checkpoint
    ``Checkpoint.put`` of a real ``_fit_and_score`` result (SQLite, WAL, one commit
    each), in the search's process.
loky stream
    A loky worker's ``send_fit`` round trip: the result pickled, sent over the local
    socket, queued by the search loop, answered (the worker waits for the answer).
in-process loop
    The search loop's own work per fit besides the checkpoint (``report``, the result
    filled, counted, the hook; the units planned and batched too), measured as the wall
    time of N instant fits run by the engine on the in-process runner minus the same
    calls made in a plain loop.
dask event
    A Dask worker's ``log_event`` of a kept fit (pickled, queued on the worker's
    batched stream to the scheduler: the worker does not wait), and the client's
    unpickling of it when the event arrives.

Run: ``python benchmarks/stream_cost.py`` (about a minute). Nothing else should run.
"""

from __future__ import annotations

import multiprocessing
import pickle
import statistics
import tempfile
import time

import numpy as np

N = 400
REPEATS = 5
FIT_SECONDS = 0.050


def a_result() -> dict:
    """One (candidate, fold) result as sklearn's search makes it."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import check_scoring
    from sklearn.model_selection._validation import _fit_and_score

    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    idx = np.arange(200)
    return _fit_and_score(
        LogisticRegression(), X, y, scorer=check_scoring(LogisticRegression()),
        train=idx[:150], test=idx[150:], verbose=0, parameters={"C": 1.0}, fit_params={},
        score_params={}, return_train_score=True, return_n_test_samples=True,
        return_times=True, return_parameters=False, error_score=np.nan)


def checkpoint_put(result) -> float:
    from distsk._search.checkpoint import Checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Checkpoint(f"{tmp}/c.sqlite")
        started = time.perf_counter()
        for i in range(N):
            ckpt.put(f"key-{i}", result)
        spent = time.perf_counter() - started
        ckpt.close()
    return spent / N


def _sender(stream, result, out):
    from distsk._units.stream import send_fit

    send_fit(stream, 0, result)  # connect first, as a worker's first fit does
    started = time.perf_counter()
    for i in range(N):
        send_fit(stream, i, result)
    out.put((time.perf_counter() - started) / N)


def loky_stream(result) -> float:
    from distsk._units.stream import FitListener

    received = []
    listener = FitListener(lambda unit, i, r: received.append(i) or True)
    ctx = multiprocessing.get_context("spawn")  # loky's workers are spawned too
    out = ctx.Queue()
    proc = ctx.Process(target=_sender, args=(listener.at(0), result, out))
    proc.start()
    per_fit = out.get(timeout=120)
    proc.join(timeout=30)
    listener.close()
    assert len(received) == N + 1
    return per_fit


def _instant(i, result, _y):
    return dict(result)


def in_process_loop(result) -> float:
    from distsk._engines.base import InProcessRunner
    from distsk._search.loop import SearchEngine

    items = [(_instant, (i, result, None), {}) for i in range(N)]
    started = time.perf_counter()
    for i in range(N):
        _instant(i, result, None)
    plain = time.perf_counter() - started
    engine = SearchEngine(InProcessRunner(), share=False, seconds_per_fit=1e-3)
    engine.register(items)
    started = time.perf_counter()
    engine.run()
    spent = time.perf_counter() - started
    assert engine.n_streamed == N
    engine.close()
    return (spent - plain) / N


def _log_events(blob, n, dask_worker=None):
    started = time.perf_counter()
    for _ in range(n):
        dask_worker.log_event(["bench-kept", "bench-stream"], blob)
    return (time.perf_counter() - started) / n


def dask_event(client, result) -> float:
    blob = pickle.dumps((0, (result, [], ""), "distsk-batch-key"))
    (worker_side,) = client.run(_log_events, blob, N).values()
    started = time.perf_counter()
    for _ in range(N):
        pickle.loads(blob)
    return worker_side + (time.perf_counter() - started) / N


def main():
    from distributed import Client, LocalCluster

    result = a_result()
    rows = {"checkpoint": [], "loky stream": [], "in-process loop": [], "dask event": []}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for _ in range(REPEATS):
            rows["checkpoint"].append(checkpoint_put(result))
            rows["loky stream"].append(loky_stream(result))
            rows["in-process loop"].append(in_process_loop(result))
            rows["dask event"].append(dask_event(client, result))
    print(f"per fit, medians of {REPEATS} runs of {N} fits; share of a "
          f"{FIT_SECONDS * 1e3:.0f} ms fit")
    medians = {name: statistics.median(values) for name, values in rows.items()}
    for name, value in medians.items():
        print(f"  {name:16s} {value * 1e6:8.1f} us  {value / FIT_SECONDS:7.3%}")
    loop = medians["in-process loop"] + medians["checkpoint"]  # on every runner
    totals = {"in process": loop, "loky": medians["loky stream"] + loop,
              "dask": medians["dask event"] + loop}
    for name, value in totals.items():
        print(f"  total, {name:9s} {value * 1e6:8.1f} us  {value / FIT_SECONDS:7.3%}")


if __name__ == "__main__":
    main()
