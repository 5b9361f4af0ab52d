"""The driver: a fit's input taken to a plan and its runner, in one place.

Find the compute once, read the input once, place the data once (gathered, or
assembled on the workers), probe, and plan once; hand back the plan with the runner it
names. ``DistributedSearchCV``, the halving searches, the joblib backend "distsk" and
``DistributedEstimator`` go through it. What a search then does with the runner (the
search loop, sklearn's ``evaluate_candidates``) stays with the search.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from .._cluster.client import inside_worker, resolve_client, using_client
from .._cluster.data import (
    OnCluster,
    assemble_on_workers,
    gather_inputs,
    inputs_to_read,
    measured,
    resolve_gather_limit,
)
from .._decide.learned import learned_costs
from .._decide.planning import Plan, place_data, plan_search
from .._decide.probe import PROBE_SUBSAMPLE, plan_from_subsample, subsample
from .._decide.profile import ComputeProfile, InputProfile, profile_compute, profile_input
from .._engines import ExecutionContext, get_executor

__all__ = ["Driver", "Placed", "Probe", "PlannedWork", "work_fits"]


class Probe(NamedTuple):
    """One probe fit: ``candidate`` fit on ``X``, ``y``; ``amount`` the size of its
    resource (a halving round's rows or trees), None for an ordinary search."""

    candidate: dict
    X: object
    y: object
    amount: float | None = None


class PlannedWork(NamedTuple):
    """A search's work as the planner sees it: ``n_fits`` fits, measured by
    ``probes``. ``terms`` (None: each fit costs one probe fit) are ``(count, amount)``
    pairs of fits of differing size, priced at ``a + b x amount`` from two probes of
    different amounts (:func:`work_fits`); ``detail`` says how they were counted."""

    n_fits: int
    probes: tuple
    terms: tuple | None = None
    detail: str = ""
    #: The probes on all rows are fits of the work whose results the caller keeps (the
    #: joblib backend's first call): the plan prices the others.
    keeps_probes: bool = False


def work_fits(work: PlannedWork, seconds: list) -> float | None:
    """The work of ``work.terms`` in first-probe fits, from the probes' ``seconds``:
    a fixed and a per-amount cost through the two probes (one probe: per amount
    only)."""
    if work.terms is None or not seconds or not seconds[0]:
        return None
    t0, r0 = seconds[0], work.probes[0].amount
    a, b = 0.0, t0 / r0
    if len(seconds) > 1 and seconds[1] is not None and work.probes[1].amount > r0:
        b = max(0.0, (seconds[1] - t0) / (work.probes[1].amount - r0))
        a = max(0.0, t0 - b * r0)
    return sum(count * (a + b * amount) for count, amount in work.terms) / t0


@dataclass(frozen=True)
class Placed:
    """A search's input where the driver put it: ``X`` in memory or an
    :class:`~distsk._cluster.data.OnCluster` placeholder, ``y`` and ``params`` in
    memory; the profiles it was planned from, and the client it runs on."""

    X: object
    y: object
    params: dict
    input: InputProfile
    compute: ComputeProfile
    client: object = None
    data: tuple | None = None  # place_data's answer, for dask input


@dataclass(frozen=True)
class Planned:
    """The plan, and the seconds of one fit the probe measured (None: not probed)."""

    plan: Plan
    seconds_per_fit: float | None = None


_IMPORTING = threading.Lock()


def _import_dask() -> None:
    """Import dask once, under a lock, before any step imports parts of it lazily.

    Two searches started at once in threads of a fresh process each imported dask
    on their own, and Python handed one of them a partly initialised ``dask.base``
    (dask's modules import each other): "ImportError: cannot import name 'annotate'
    from partially initialized module 'dask.base'", 5 runs in 6
    (``test_checkpoint.py::test_two_searches_share_one_file`` run alone)."""
    with _IMPORTING:  # held while the first thread imports; a lookup afterwards
        import dask.base  # noqa: F401
        import dask.utils  # noqa: F401


class Driver:
    """The steps every fit of distsk's takes, each once: find the compute, read the
    input, put the data where the plan runs it, plan, and make the plan's runner.

    ``DistributedSearchCV`` (and so the halving searches) and the joblib backend
    (:meth:`place`, :meth:`plan`, :meth:`runner`) and ``DistributedEstimator``
    (:meth:`where`, :meth:`read`, :meth:`put`, around ``plan_fit``) go through it.
    Parameters are the user's options (``backend``, ``n_jobs``, ``client``,
    ``max_gather_bytes``, ``checkpoint``).
    """

    def __init__(self, *, backend: str, n_jobs=None, client=None,
                 max_gather_bytes="auto", checkpoint=None, connect: bool = False):
        self.backend, self.n_jobs = backend, n_jobs
        self.client_option, self.max_gather_bytes = client, max_gather_bytes
        self.checkpoint = checkpoint
        # Resolve the client option for any backend (else for "auto" and "dask" only).
        self.connect = connect
        self._where = None
        _import_dask()

    # ------------------------------------------------------------------ the steps
    def where(self) -> tuple[object, ComputeProfile]:
        """The client (None without a cluster option) and the compute profile,
        resolved once per driver."""
        if self._where is None:
            client = (resolve_client(self.client_option)
                      if self.connect or self.backend in ("auto", "dask") else None)
            self._where = (client, profile_compute(client))
        return self._where

    def read(self, X, y, params: dict, *, client=None, measure: bool = True):
        """``(X, y, params, input profile)``: ``dask.delayed`` input resolved (only
        when it is; its size is unknown until then), lazy X measured when
        ``measure``."""
        with using_client(client):
            X, y, params = inputs_to_read(X, y, params, self.max_gather_bytes)
            prof = profile_input(X)
            if prof.lazy and measure:
                X, prof = measured(X, prof)
        return X, y, params, prof

    @staticmethod
    def put(X, y, params: dict, prof: InputProfile, *, client, on_workers: bool,
            gather: bool):
        """The data where it runs: X assembled on the workers (y and the fit
        parameters, which sklearn's splitters and scorers read here, come to this
        process), or everything gathered here (the transfer teaches the cost model),
        or left as it is."""
        with using_client(client):
            if on_workers:
                X = assemble_on_workers(client, X, prof.kind)
                _, y, params = gather_inputs(None, y, params)
            elif gather:
                started = time.perf_counter()
                X, y, params = gather_inputs(X, y, params)
                learned_costs().observe_transfer(prof.nbytes, time.perf_counter() - started)
        return X, y, params

    # ------------------------------------------------------------------ a search
    def place(self, X, y, params: dict) -> Placed:
        """A search's data placed once: dask input is gathered here or assembled on
        the workers, as ``place_data`` decides."""
        client, compute = self.where()
        X, y, params, prof = self.read(X, y, params, client=client)
        data = None
        if prof.lazy:
            with using_client(client):
                data = place_data(prof, compute, backend=self.backend,
                                  max_gather_bytes=resolve_gather_limit(self.max_gather_bytes))
            X, y, params = self.put(X, y, params, prof, client=client,
                                    on_workers=data[0] == "workers",
                                    gather=data[0] != "workers")
        return Placed(X, y, params, prof, compute, client, data)

    def plan(self, placed: Placed, work: PlannedWork | None, probe_fit, estimator, *,
             subsample_rows: bool = True) -> Planned:
        """The plan for ``work`` on ``placed`` data, made once.

        Engine "auto" probes first unless ``probe_fit`` is None: ``probe_fit(probe)``
        gives the seconds, bytes and CPU seconds of one fit of a :class:`Probe` here,
        or Nones. On 1/8 of the rows (a new Probe; not with ``subsample_rows`` False)
        when that decides the engine for a fit 3x faster or slower, else each of
        ``work.probes`` on all rows. Not with one slot, a checkpoint (every fit goes
        through it) or data kept on the cluster (nothing to fit here).
        """
        n_fits = work.n_fits if work else 0
        costs = fits = None
        seconds = nbytes = cpu = None

        def planned(seconds, nbytes, cpu, rows=1.0):
            return plan_search(
                placed.input, placed.compute, backend=self.backend, n_jobs=self.n_jobs,
                n_fits=n_fits, data=placed.data, probe_seconds=seconds, probe_bytes=nbytes,
                probe_cpu_seconds=cpu, probe_rows=rows, costs=costs, work_fits=fits,
                work_detail=work.detail if fits is not None else "")

        if (probe_fit is not None and self.backend == "auto" and self.n_jobs != 1
                and work is not None and self.checkpoint is None
                and not isinstance(placed.X, OnCluster)):
            # Overheads measured once per process (never from inside a worker's task).
            costs = learned_costs().costs(placed.client, measure=not inside_worker())
            first = work.probes[0]
            part = (subsample(estimator, first.X, first.y, PROBE_SUBSAMPLE)
                    if work.terms is None and subsample_rows else None)
            decided = None if part is None else plan_from_subsample(
                planned, lambda: probe_fit(Probe(first.candidate, *part)))
            if decided is not None:
                plan, (seconds, _, _) = decided
                return Planned(plan, seconds)
            probes = [probe_fit(p) for p in work.probes]
            if work.keeps_probes:
                n_fits -= len(probes)
            seconds, nbytes, cpu = probes[0]
            fits = work_fits(work, [m[0] for m in probes])
            if len(probes) > 1 and probes[1][1] is not None:
                # Memory grows with the amount: the last round's fits hold most.
                largest = max(amount for _, amount in work.terms)
                nbytes = int(probes[1][1] * largest / work.probes[1].amount)
        return Planned(planned(seconds, nbytes, cpu), seconds)

    @staticmethod
    def runner(plan: Plan, client):
        """The search runner of the plan's engine."""
        return get_executor(plan.executor).search_runner(ExecutionContext(plan, client))

