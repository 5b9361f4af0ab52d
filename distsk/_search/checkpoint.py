"""Checkpoints: every finished (candidate, fold) result of a search, kept in SQLite.

A result is stored under a key that covers everything that determines it: the
estimator and its parameters, the candidate, the fold's train and test indices, a
fingerprint of X, y and the fit / score parameters, the scorer, ``error_score`` and
``return_train_score``, and the versions of scikit-learn and distsk. A stored result is
reused only under the same key, so a changed input never yields a stale result.

Each result is committed as it arrives (SQLite in WAL mode: a process killed at any
instant leaves the file usable; several searches may share one file).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import threading
import time

from ..exceptions import CheckpointError

__all__ = ["Checkpoint", "fingerprint"]

SCHEMA = "1"
#: Seconds a search waits for a checkpoint file another search holds locked.
OPEN_TIMEOUT = 60.0


def fingerprint(obj) -> str:
    """A content hash of ``obj`` (joblib's hasher; cloudpickle for what it cannot pickle)."""
    from joblib import hash as joblib_hash

    try:
        return joblib_hash(obj)
    except Exception:
        import cloudpickle

        return hashlib.sha256(cloudpickle.dumps(obj)).hexdigest()


class Checkpoint:
    """A SQLite file of search results keyed by :func:`fingerprint` of their inputs."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:
                schema = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Two searches opening one new file at once: SQLite answers "database is
                # locked" to the second one's switch to WAL at once, without waiting
                # for its busy timeout; opening again after a moment succeeds.
                if getattr(self, "_db", None) is not None:
                    self._db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise CheckpointError(
                        f"checkpoint={self.path!r} is not a usable distsk checkpoint "
                        f"({exc}). Delete the file or pass another path; finished fits "
                        "cannot be read from it.") from exc
                time.sleep(0.05)
            except sqlite3.DatabaseError as exc:
                raise CheckpointError(
                    f"checkpoint={self.path!r} is not a usable distsk checkpoint ({exc}). "
                    "Delete the file or pass another path; finished fits cannot be read "
                    "from it.") from exc
        if schema != SCHEMA:
            self._db.close()
            raise CheckpointError(
                f"checkpoint={self.path!r} was written by another distsk checkpoint format "
                f"(schema {schema}, this distsk reads {SCHEMA}). Pass another path or delete it."
            )

    def _open(self) -> str:
        """Connect, set the file up if new; the schema version it holds."""
        self._db = sqlite3.connect(
            self.path, timeout=OPEN_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode, NORMAL still survives the process being killed at any instant
        # (what a checkpoint is for); only a power cut or OS crash may lose the last
        # results (never corrupt the file). FULL's fsync per result cost ~0.2 ms each.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result BLOB NOT NULL)"
        )
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA,))
        (schema,) = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        return schema

    def get_many(self, keys) -> dict[str, dict]:
        found: dict[str, dict] = {}
        keys = list(keys)
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = self._db.execute(
                    f"SELECT key, result FROM results WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for key, blob in rows:
                    try:
                        found[key] = pickle.loads(blob)
                    except Exception:  # unreadable row: refit rather than fail
                        continue
        return found

    def put(self, key: str, result: dict) -> None:
        blob = pickle.dumps({k: v for k, v in result.items() if k != "estimator"})
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, blob))

    def __len__(self):
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self):
        with self._lock:
            self._db.close()


class ItemKeys:
    """Keys of a search's items: one fingerprint of the shared inputs, then per item."""

    def __init__(self):
        self._by_id: dict[int, tuple[object, str]] = {}

    def _fp(self, obj) -> str:
        # X, y and fit parameters are the same objects for every item: hash them once.
        hit = self._by_id.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        fp = fingerprint(obj)
        self._by_id[id(obj)] = (obj, fp)
        return fp

    def key(self, item) -> str:
        import sklearn

        from .. import __version__
        from .._units.fit_call import FitCall

        call = FitCall.of(item)
        shared = (self._fp(call.X), self._fp(call.y), self._fp(call.fit_params),
                  self._fp(call.score_params), self._fp(call.scorer))
        return fingerprint((
            "distsk-checkpoint", SCHEMA, sklearn.__version__, __version__,
            fingerprint(call.estimator), shared,
            fingerprint(call.parameters),
            self._fp(call.train), self._fp(call.test),  # shared by folds
            repr(call.error_score), call.wants("train_score"),
        ))
