"""The measuring half of the benchmarks: sizes, the run context, timing contenders.

A scenario builds its data, lists its contenders (name -> a zero-argument callable that
does one timed run) and a check against plain sklearn; ``measure`` times them side by
side, round robin, and turns the timings and checks into result records.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sizes", "Context", "Contender", "Timed", "Check", "measure", "plan_note"]


@dataclass(frozen=True)
class Sizes:
    """Dataset and grid sizes of one run; ``Sizes.smoke()`` is ~10x smaller everywhere."""

    lr_rows: int = 100_000
    lr_cols: int = 20
    lr_chunk_rows: int = 25_000
    forest_rows: int = 20_000
    forest_cols: int = 20
    forest_trees: int = 200
    grid_rows: int = 1_000
    grid_cols: int = 4
    cv: int = 5
    rf_grid: dict = field(default_factory=lambda: {
        "n_estimators": [50, 100],
        "max_depth": [3, 5, 8, None],
        "max_features": [1, 2],
    })
    n_C: int = 20
    # pipeline-grid: StandardScaler -> Nystroem -> LogisticRegression
    pipe_rows: int = 3_000
    pipe_cols: int = 50
    pipe_components: int = 1_000
    pipe_cv: int = 3
    # forest-size-grid: rf_grid with these n_estimators, cv folds
    size_trees: tuple = (100, 200, 300)

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            lr_rows=10_000, lr_chunk_rows=2_500,
            forest_rows=2_000, forest_trees=20,
            grid_rows=200, cv=3,
            rf_grid={"n_estimators": [5, 10], "max_depth": [3, None]},
            n_C=4,
            pipe_rows=300, pipe_components=50,
            size_trees=(10, 20, 30),
        )


@dataclass(frozen=True)
class Context:
    """Everything a scenario function receives.

    Attributes
    ----------
    client : distributed.Client
        The run's shared 2-worker loopback cluster (also the default client).
    repeat : int
        Timed runs per contender; the record's ``median_s`` is their median.
    sizes : Sizes
        Dataset and grid sizes (full or smoke).
    smoke : bool
        True for ``--smoke`` runs (tiny sizes: timings mean nothing, only that it runs).
    """

    client: Any
    repeat: int
    sizes: Sizes
    smoke: bool = False

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Contender:
    """One way of doing the scenario's work. ``run()`` is timed; its result is checked.

    ``n_fits`` is the number of estimator fits one run makes: a number, or a function of
    the run's result (e.g. ``lambda search: search.n_fits_performed_``), read from the
    last run.
    """

    name: str
    run: Callable[[], Any]
    n_fits: int | Callable[[Any], int] | None = None
    notes: str = ""


@dataclass(frozen=True)
class Timed:
    """What a contender's ``run()`` returns when only part of it is to be timed.

    ``seconds`` replaces the wall time of the whole call (e.g. the ``resume`` scenario
    leaves out a child process's start-up); ``result`` is checked as usual.
    """

    result: Any
    seconds: float


#: ``check(name, result, results) -> (equal_to_sklearn or None, note)``; ``results`` maps
#: every contender that succeeded to the result of its last run.
Check = Callable[[str, Any, dict], "tuple[bool | None, str]"]


def plan_note(result) -> str:
    """Short "plan: executor/strategy" text for distsk results (empty for others)."""
    plan = getattr(result, "plan_", None)
    return f"plan: {plan.executor}/{plan.strategy}" if plan is not None else ""


#: A scenario whose every contender's first run is under SHORT_SECONDS is timed
#: SHORT_REPEAT times per contender (at least; ``--repeat`` more is kept), round robin.
SHORT_SECONDS = 1.0
SHORT_REPEAT = 15


def measure(
    ctx: Context,
    scenario: str,
    contenders: list[Contender],
    *,
    baseline: str,
    check: Check | None = None,
) -> list[dict]:
    """Time every contender ``ctx.repeat`` times (``SHORT_REPEAT`` when all of them take
    under ``SHORT_SECONDS``), round robin, and return its records.

    Round robin (A B C, then each later round in a seeded shuffled order) rather than
    A A A B B B spreads slow phases of a busy machine, and the after-effects of the
    contender just before, over all contenders. A contender that raises is recorded with
    its error in ``notes`` and ``median_s=None``, and the others carry on.
    """
    names = [c.name for c in contenders]
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not one of the contenders {names}")
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    rounds, rep = ctx.repeat, 0
    while rep < rounds:
        if rep == 1 and ctx.repeat > 1 and not ctx.smoke and times and max(
                (t[0] for t in times.values() if t), default=SHORT_SECONDS) < SHORT_SECONDS:
            # Sub-second contenders: a median of 3 is within the machine's noise (tiny-grid,
            # 0.14 s: +-30 ms from run to run), so they get SHORT_REPEAT runs.
            rounds = max(rounds, SHORT_REPEAT)
        # Each later round in its own order (seeded): in a fixed order, tiny-grid's
        # "distsk auto" always ran right after "distsk cluster" and measured 0.20 s
        # against 0.17 s for the same engine forced (0.209 / 0.205 s timed alone).
        order = list(contenders)
        if rep > 0:
            random.Random(rep).shuffle(order)
        for c in order:
            if c.name in errors:
                continue
            start = time.perf_counter()
            try:
                out = c.run()
            except Exception as exc:  # recorded, not fatal: the other contenders still run
                errors[c.name] = f"error: {type(exc).__name__}: {exc}"
                ctx.log(f"  [{scenario}] {c.name}: FAILED\n{traceback.format_exc()}")
                continue
            elapsed = time.perf_counter() - start
            if isinstance(out, Timed):
                elapsed, out = out.seconds, out.result
            times[c.name].append(elapsed)
            results[c.name] = out
            ctx.log(f"  [{scenario}] {c.name} run {rep + 1}/{rounds}: {elapsed:.3f} s")
        rep += 1

    medians = {n: statistics.median(t) for n, t in times.items() if t}
    base = medians.get(baseline)
    records = []
    for c in contenders:
        notes = [n for n in (c.notes, plan_note(results.get(c.name))) if n]
        equal = None
        if c.name in errors:
            notes.append(errors[c.name])
        elif check is not None:
            try:
                equal, note = check(c.name, results[c.name], results)
            except Exception as exc:
                equal, note = False, f"check failed: {type(exc).__name__}: {exc}"
            if note:
                notes.append(note)
        median = medians.get(c.name)
        plan = getattr(results.get(c.name), "plan_", None)
        n_fits = c.n_fits
        if callable(n_fits):
            n_fits = int(n_fits(results[c.name])) if c.name in results else None
        records.append({
            "scenario": scenario,
            "contender": c.name,
            "baseline": baseline,
            "median_s": None if median is None else round(median, 4),
            "times_s": [round(t, 4) for t in times[c.name]],
            "ratio_to_baseline": (
                None if median is None or not base else round(median / base, 3)
            ),
            "n_fits": n_fits,
            "equal_to_sklearn": equal,
            "plan": None if plan is None else str(plan),
            # The cost model's prediction for the engine that ran (backend="auto"), every
            # engine's, and the actual time distsk measured for the same work (last run).
            "predicted_s": _rounded(getattr(plan, "predicted_seconds", None)),
            "actual_s": _rounded(getattr(plan, "actual_seconds", None)),
            "predictions": {p.engine: _rounded(p.seconds)
                            for p in getattr(plan, "predictions", ())} or None,
            "notes": "; ".join(notes),
        })
    return records


def _rounded(value, digits: int = 4):
    return None if value is None else round(value, digits)
