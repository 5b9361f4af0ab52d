"""What storing a result as data costs (#23 section 4): schema 2 (JSON data, read by a
strict decoder) beside schema 1's pickles, per result, on the same SQLite file setup.

Each round writes N typical ``_fit_and_score`` results (a multimetric one with train
scores, numpy scalars in it) and reads them back, both ways, alternating which goes
first; medians of the rounds. The JSON side is distsk's own ``Checkpoint``; the pickle
side is the same statements with ``pickle`` (what schema 1 did).

    python benchmarks/checkpoint_cost.py [--n 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import pickle
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from distsk._search.checkpoint import Checkpoint, restored


def _result(i):
    scores = {"accuracy": np.float64(0.8 + i * 1e-6), "f1": np.float64(0.7)}
    return {"fit_error": None, "test_scores": scores, "train_scores": dict(scores),
            "n_test_samples": 200, "fit_time": 0.05 + i * 1e-7, "score_time": 0.004}


def _json_round(folder, n):
    store = Checkpoint(Path(folder) / "json.sqlite")
    keys = [f"k{i}" for i in range(n)]
    started = time.perf_counter()
    for i, key in enumerate(keys):
        store.put(key, _result(i))
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    back = [restored(r, None) for r in store.get_many(keys).values()]
    read = time.perf_counter() - started
    store.close()
    assert len(back) == n
    return wrote / n, read / n


def _pickle_round(folder, n):
    db = sqlite3.connect(Path(folder) / "pickle.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE results (key TEXT PRIMARY KEY, result BLOB NOT NULL)")
    keys = [f"k{i}" for i in range(n)]
    started = time.perf_counter()
    for i, key in enumerate(keys):
        db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, pickle.dumps(_result(i))))
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    back = []
    for start in range(0, n, 500):
        chunk = keys[start:start + 500]
        rows = db.execute(f"SELECT key, result FROM results WHERE key IN "
                          f"({','.join('?' * len(chunk))})", chunk).fetchall()
        back += [pickle.loads(blob) for _, blob in rows]
    read = time.perf_counter() - started
    db.close()
    assert len(back) == n
    return wrote / n, read / n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    runs = {"json": [], "pickle": []}
    for r in range(args.rounds):
        order = ("json", "pickle") if r % 2 == 0 else ("pickle", "json")
        for name in order:
            with tempfile.TemporaryDirectory() as folder:
                runs[name].append((_json_round if name == "json" else _pickle_round)(folder, args.n))
    print(f"per result, medians of {args.rounds} rounds of {args.n} results:")
    for name, label in (("pickle", "schema 1 (pickle)"), ("json", "schema 2 (JSON data)")):
        write = statistics.median(w for w, _ in runs[name]) * 1e6
        read = statistics.median(r for _, r in runs[name]) * 1e6
        print(f"  {label:<22} write {write:6.1f} us   read {read:6.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
