"""Checkpoints: every finished (candidate, fold) result of a search, kept in SQLite.

A result is stored under a key that covers everything that determines it: the
estimator and its parameters, the candidate, the fold's train and test indices, a
fingerprint of X, y and the fit / score parameters, the scorer, ``error_score`` and
``return_train_score``, and the versions of scikit-learn and distsk. A stored result is
reused only under the same key, so a changed input never yields a stale result.

Each result is committed as it arrives (SQLite in WAL mode: a process killed at any
instant leaves the file usable; several searches may share one file).

A checkpoint is data, never code (schema 2): a result is stored as JSON of plain values
-- scores, times, counts, a failed fit's error as text; numpy scalars keep their dtype
-- and read back by a strict decoder, so opening any file, whoever wrote it, runs
nothing. A candidate's parameters (which may be estimators) are not stored: the search
that resumes has them (:func:`restored`). A result holding anything else (a custom
scorer's object) is not stored and runs again. A file that is not a distsk checkpoint,
is damaged, or holds rows that are not such data raises :class:`CheckpointError`
before any work, and is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time

import numpy as np

from ..exceptions import CheckpointError

__all__ = ["Checkpoint", "fingerprint", "encode", "decode", "restored"]

#: 1: results pickled (reading one could run code); 2: results as JSON data.
SCHEMA = "2"
#: Numpy scalar kinds stored with their dtype: bool, signed and unsigned int, float.
_KINDS = "biuf"
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


class NotData(TypeError):
    """A result holds a value that a checkpoint does not store (only plain data)."""


def encode(result: dict) -> str:
    """``result`` (one ``_fit_and_score`` dict, its estimator and parameters left out)
    as JSON text; raises :class:`NotData` for anything but plain data."""
    kept = {k: v for k, v in result.items() if k not in ("estimator", "parameters")}
    kept["$parameters"] = "parameters" in result  # the resuming search fills them in
    return json.dumps(_plain(kept), allow_nan=True, separators=(",", ":"))


def _plain(value):
    if value is None or type(value) in (bool, str, int):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, np.generic) and value.dtype.kind in _KINDS and value.shape == ():
        return {"$np": value.dtype.str, "v": _plain(value.item())}
    if type(value) is dict and all(type(k) is str for k in value):
        return {"$dict": {k: _plain(v) for k, v in value.items()}}
    if type(value) in (list, tuple):
        return {"$" + type(value).__name__: [_plain(v) for v in value]}
    raise NotData(f"{type(value).__name__} is not stored in a checkpoint")


def decode(text: str) -> dict:
    """The result dict of :func:`encode`'s text; :class:`CheckpointError` unless it is
    exactly such data (never runs anything: JSON and a fixed set of value forms)."""
    try:
        value = _value(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"not a stored result: {exc}") from None
    if not isinstance(value, dict) or type(value.get("$parameters")) is not bool:
        raise CheckpointError("not a stored result: no result dict")
    return value


def _value(data):
    if data is None or type(data) in (bool, str, int, float):
        return data
    if type(data) is not dict or len(data) not in (1, 2):
        raise ValueError(f"unexpected {type(data).__name__} {data!r:.60}")
    if "$np" in data:
        dtype = np.dtype(data["$np"])
        if dtype.kind not in _KINDS or set(data) != {"$np", "v"}:
            raise ValueError(f"unexpected numpy value {data!r:.60}")
        return dtype.type(_value(data["v"]))
    ((tag, inner),) = data.items()
    if tag == "$float" and inner in ("nan", "inf", "-inf"):
        return float(inner)
    if tag == "$dict" and type(inner) is dict:
        return {k: _value(v) for k, v in inner.items()}
    if tag in ("$list", "$tuple") and type(inner) is list:
        items = [_value(v) for v in inner]
        return items if tag == "$list" else tuple(items)
    raise ValueError(f"unexpected value {data!r:.60}")


def restored(stored: dict, parameters) -> dict:
    """A stored result as ``_fit_and_score`` returned it: the parameters, when it
    returned them, are the resuming search's own (``parameters``), never the file's."""
    result = {k: v for k, v in stored.items() if k != "$parameters"}
    if stored.get("$parameters"):
        result["parameters"] = parameters
    return result


class Checkpoint:
    """A SQLite file of search results keyed by :func:`fingerprint` of their inputs."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        #: Keys stored through this object: the fits run in this ``fit`` (a two-pass
        #: search's report tells sklearn's callbacks these ran, the others resumed).
        self.written: set[str] = set()
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:
                schema = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Two searches opening one new file at once: SQLite answers "database is
                # locked" to the second one's switch to WAL at once, without waiting
                # for its busy timeout; opening again after a moment succeeds.
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
            old = (" (results stored as pickles, which can run code when they are read:"
                   " this distsk does not open them)" if schema == "1" else "")
            raise CheckpointError(
                f"checkpoint={self.path!r} was written by another distsk checkpoint format "
                f"(schema {schema}{old}; this distsk reads {SCHEMA}). Nothing was run and "
                "the file is unchanged; pass another path (its fits then run again)."
            )

    def _open(self) -> str | None:
        """Connect, set the file up if new; the schema version it holds. A file that
        holds anything else is never written into (not even its journal mode)."""
        self._db = sqlite3.connect(
            self.path, timeout=OPEN_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            return self._set_up()
        except BaseException:
            # Closed here on every failure: a connection left to the garbage collector
            # makes Python 3.13 warn "unclosed database" in whatever code runs then
            # (a later test's warning check, in the newest CI stage of 2026-12-07).
            self._db.close()
            raise

    def _set_up(self) -> str | None:
        tables = {name for (name,) in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise CheckpointError(
                f"checkpoint={self.path!r} is an SQLite database but not a distsk "
                f"checkpoint (its tables: {', '.join(sorted(tables))}; a checkpoint has "
                "'meta' and 'results'). Nothing was run and the file is unchanged; pass "
                "another path.")
        if tables:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is not None and row[0] != SCHEMA:
                return row[0]  # another format: read nothing, write nothing
            if row is None and not tables <= {"meta", "results"}:
                raise CheckpointError(
                    f"checkpoint={self.path!r} has a 'meta' table without a distsk schema "
                    f"(its tables: {', '.join(sorted(tables))}): not a distsk checkpoint. "
                    "Nothing was run and the file is unchanged; pass another path.")
            # Ours, or one another search is setting up this instant: set up below
            # (every statement there is idempotent).
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

    def get_many(self, keys, parameters=None) -> dict[str, dict]:
        """The stored results of ``keys``, as ``_fit_and_score`` returned them. A
        result that included its candidate's parameters gets them from
        ``parameters`` (key -> the resuming search's own), never from the file; without
        them it is left out (its fit runs again). Raises :class:`CheckpointError`,
        reading nothing into the search, when any row is not a stored result."""
        found: dict[str, dict] = {}
        bad: list[str] = []
        keys = list(keys)
        with self._lock:
            try:
                for start in range(0, len(keys), 500):
                    chunk = keys[start:start + 500]
                    rows = self._db.execute(
                        "SELECT key, result FROM results WHERE key IN "
                        f"({','.join('?' * len(chunk))})", chunk).fetchall()
                    for key, text in rows:
                        try:
                            found[key] = decode(text if isinstance(text, str)
                                                else bytes(text).decode("utf-8"))
                        except (CheckpointError, UnicodeDecodeError):
                            bad.append(key)
            except sqlite3.DatabaseError as exc:
                raise CheckpointError(
                    f"checkpoint={self.path!r} cannot be read ({exc}): the file is damaged "
                    "or truncated. Nothing was run and the file is unchanged; pass another "
                    "path (its fits then run again).") from exc
        if bad:
            raise CheckpointError(
                f"checkpoint={self.path!r}: {len(bad)} of the {len(found) + len(bad)} "
                "results stored for this search are not distsk result data (the file was "
                "modified or damaged; nothing in it was run). Nothing was run and the file "
                f"is unchanged: its {len(found)} good results are intact. `distsk checkpoint "
                f"{self.path} --drop-unreadable` removes the bad rows (their fits then run "
                "again); or pass another path.")
        parameters = parameters or {}
        return {key: restored(stored, parameters.get(key)) for key, stored in found.items()
                if not stored["$parameters"] or key in parameters}

    def put(self, key: str, result: dict) -> None:
        """Store ``result`` under ``key``; a result that is not plain data (a custom
        scorer's object) is not stored: its fit runs again on resume."""
        try:
            text = encode(result)
        except NotData:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, text))
            self.written.add(key)

    def unreadable(self) -> list[str]:
        """Keys of every row that is not a stored result."""
        with self._lock:
            rows = self._db.execute("SELECT key, result FROM results").fetchall()
        bad = []
        for key, text in rows:
            try:
                decode(text if isinstance(text, str) else bytes(text).decode("utf-8"))
            except (CheckpointError, UnicodeDecodeError):
                bad.append(key)
        return bad

    def drop(self, keys) -> None:
        keys = list(keys)
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                self._db.execute(
                    f"DELETE FROM results WHERE key IN ({','.join('?' * len(chunk))})", chunk)

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
