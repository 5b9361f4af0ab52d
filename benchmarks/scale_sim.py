"""Orchestration efficiency on many slots, simulated on a small machine (#10).

    python benchmarks/scale_sim.py [--quick] [--out DIR]

Fits sleep (``sleepy.SleepyClassifier``: no CPU, GIL released), so a LocalCluster of
worker processes with many threads hosts 8 to 128 "slots" on 2 cores. What is measured
is everything but the fits: the client, the scheduler, task and result handling,
sklearn's own per-fit work. Efficiency = ideal time / actual time, where ideal is
fits x fit duration / slots.

Writes ``scale_sim.json``, ``scale_sim.md`` (the table, and where the time goes) and
``scale_sim.png`` (efficiency against slots) to ``--out`` (default benchmarks/results).
The ``scale-sim`` scenario of ``run.py`` runs the headline cases (64 slots) side by side
with dask-ml and sklearn under joblib's Dask backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from sleepy import SleepyClassifier  # noqa: E402

WORKERS = 4  # processes; slots = WORKERS x threads each
CV = 5


def cluster(slots: int):
    """A LocalCluster of ``slots`` threads over ``WORKERS`` processes (fewer if < 4)."""
    from distributed import Client, LocalCluster

    workers = min(WORKERS, slots)
    lc = LocalCluster(n_workers=workers, threads_per_worker=slots // workers,
                      processes=True, host="127.0.0.1", dashboard_address=None,
                      worker_dashboard_address=None)
    client = Client(lc, set_as_default=False)
    client.wait_for_workers(workers, timeout=60)
    client.run(_warm)
    _warm()
    run_distsk(client, 0.0, 2 * slots)  # task paths loaded, not timed
    return lc, client


def _warm():
    """Imports every contender needs, done before timing in every process."""
    import sklearn.model_selection  # noqa: F401

    import distsk._units.remote  # noqa: F401

    try:
        import dask_ml.model_selection  # noqa: F401
    except ImportError:
        pass


def data():
    rng = np.random.RandomState(0)
    return rng.rand(200, 4), np.arange(200) % 2


def grid(n_fits: int) -> dict:
    return {"C": [float(c) for c in range(1, n_fits // CV + 1)]}


def run_distsk(client, seconds, n_fits, backend="dask"):
    from distsk import DistributedSearchCV

    X, y = data()
    return DistributedSearchCV(SleepyClassifier(seconds=seconds), grid(n_fits), cv=CV,
                               backend=backend, client=client).fit(X, y)


def run_dask_ml(client, seconds, n_fits):
    from dask_ml.model_selection import GridSearchCV

    X, y = data()
    with client.as_current():  # dask-ml looks the client up as the default one
        return GridSearchCV(SleepyClassifier(seconds=seconds), grid(n_fits), cv=CV,
                            iid=False, scheduler=client).fit(X, y)


def run_joblib_dask(client, seconds, n_fits):
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV

    X, y = data()
    with parallel_config(backend="dask", client=client):
        return GridSearchCV(SleepyClassifier(seconds=seconds), grid(n_fits), cv=CV,
                            n_jobs=-1).fit(X, y)


RUNNERS = {"distsk": run_distsk, "dask-ml": run_dask_ml, "sklearn joblib-dask": run_joblib_dask}


def efficiency(slots, seconds, n_fits, elapsed) -> float:
    return round(n_fits * seconds / slots / elapsed, 3)


def timed(client, name, slots, seconds, n_fits) -> dict:
    client.run(lambda: None)  # workers warm
    start = time.perf_counter()
    search = RUNNERS[name](client, seconds, n_fits)
    elapsed = time.perf_counter() - start
    return {"contender": name, "slots": slots, "fit_s": seconds, "n_fits": n_fits,
            "elapsed_s": round(elapsed, 3),
            "efficiency": efficiency(slots, seconds, n_fits, elapsed),
            "mean_test_score": float(np.mean(search.cv_results_["mean_test_score"]))}


def profile(client, slots, seconds, n_fits) -> dict:
    """Where distsk's time goes: CPU seconds per fit of the client, the scheduler and the
    workers, and sklearn's result formatting, for one search."""
    import psutil
    from sklearn.model_selection._search import BaseSearchCV

    def cpu():
        p = psutil.Process()
        t = p.cpu_times()
        return t.user + t.system

    # A LocalCluster's scheduler runs in this (the client's) process: counted once.
    shared = client.run_on_scheduler(os.getpid) == os.getpid()

    formatting = []
    original = BaseSearchCV._format_results

    def timed_format(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            formatting.append(time.perf_counter() - start)

    BaseSearchCV._format_results = timed_format
    try:
        before = (cpu(), client.run_on_scheduler(cpu), sum(client.run(cpu).values()))
        start = time.perf_counter()
        search = run_distsk(client, seconds, n_fits)
        elapsed = time.perf_counter() - start
        after = (cpu(), client.run_on_scheduler(cpu), sum(client.run(cpu).values()))
    finally:
        BaseSearchCV._format_results = original
    per_fit = [(b - a) / n_fits * 1e3 for a, b in zip(before, after)]
    if shared:
        per_fit[1] = 0.0
    return {
        "slots": slots, "fit_s": seconds, "n_fits": n_fits, "elapsed_s": round(elapsed, 3),
        "efficiency": efficiency(slots, seconds, n_fits, elapsed),
        "client_ms_per_fit": round(per_fit[0], 3),
        "scheduler_in_client": shared,
        "scheduler_ms_per_fit": round(per_fit[1], 3),
        "workers_ms_per_fit": round(per_fit[2], 3),
        "format_results_s": round(sum(formatting), 3),
        "performed": search.n_fits_performed_,
    }


def curve(slot_counts, durations, waves, contenders=("distsk", "dask-ml")) -> list[dict]:
    rows = []
    for slots in slot_counts:
        lc, client = cluster(slots)
        try:
            for seconds in durations:
                n_fits = slots * waves
                for name in contenders:
                    row = timed(client, name, slots, seconds, n_fits)
                    print(row, file=sys.stderr, flush=True)
                    rows.append(row)
        finally:
            client.close()
            lc.close()
    return rows


def write(rows, profiles, out: Path, docs: Path | None = None):
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_sim.json").write_text(json.dumps({"curve": rows, "profile": profiles},
                                                   indent=2) + "\n")
    lines = ["| slots | fit | fits | " + " | ".join(
        f"{n} eff." for n in sorted({r['contender'] for r in rows})) + " |"]
    names = sorted({r["contender"] for r in rows})
    lines.append("|" + "---|" * (3 + len(names)))
    keys = sorted({(r["slots"], r["fit_s"], r["n_fits"]) for r in rows})
    for slots, fit, n in keys:
        cells = []
        for name in names:
            hit = [r for r in rows if (r["slots"], r["fit_s"], r["n_fits"], r["contender"])
                   == (slots, fit, n, name)]
            cells.append(f"{hit[0]['efficiency']:.2f}" if hit else "")
        lines.append(f"| {slots} | {fit * 1e3:.0f} ms | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Where distsk's time goes (CPU ms per fit; 2 shared cores; a LocalCluster's "
              "scheduler runs in the client's process, so 'client' includes it):", "",
              "| slots | fit | fits | efficiency | client | scheduler | workers | "
              "format_results |", "|---|---|---|---|---|---|---|---|"]
    for p in profiles:
        lines.append(
            f"| {p['slots']} | {p['fit_s'] * 1e3:.0f} ms | {p['n_fits']} | {p['efficiency']:.2f}"
            f" | {p['client_ms_per_fit']:.2f} | {p['scheduler_ms_per_fit']:.2f} | "
            f"{p['workers_ms_per_fit']:.2f} | {p['format_results_s']:.2f} s |")
    (out / "scale_sim.md").write_text("\n".join(lines) + "\n")
    if docs is not None:  # the same tables for docs/scaling.rst (an include, not a page)
        docs.write_text(_rst(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        for fit in sorted({r["fit_s"] for r in rows}):
            pts = sorted((r["slots"], r["efficiency"]) for r in rows
                         if r["contender"] == name and r["fit_s"] == fit)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f"{name}, {fit * 1e3:.0f} ms fits")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("slots (worker threads)")
    ax.set_ylabel("efficiency (ideal / actual)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Sleeping fits on a simulated cluster (2 real cores)")
    fig.tight_layout()
    fig.savefig(out / "scale_sim.png", dpi=110)


def _rst(md_lines) -> str:
    """Markdown pipe tables as reStructuredText list-tables (text lines kept)."""
    out, table = [], []

    def flush():
        if table:
            out.extend([".. list-table::", "   :header-rows: 1", ""])
            for row in table:
                cells = [c.strip() for c in row.strip("|").split("|")]
                out.append("   * - " + cells[0])
                out.extend(f"     - {c}" for c in cells[1:])
            out.append("")
            table.clear()

    for line in md_lines:
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            table.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/scale_sim.py", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer waves (4 instead of 16)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--docs", type=Path, default=None,
                   help="also write the tables as reStructuredText here "
                   "(docs/_scale_sim.inc is what docs/scaling.rst includes)")
    args = p.parse_args(argv)
    waves = 4 if args.quick else 16
    rows = curve([8, 16, 32, 64, 128], [0.5, 0.05], waves)
    profiles = []
    for slots in (64, 128):
        lc, client = cluster(slots)
        try:
            for seconds in (0.5, 0.05):
                profiles.append(profile(client, slots, seconds, 2000))
                print(profiles[-1], file=sys.stderr, flush=True)
        finally:
            client.close()
            lc.close()
    write(rows, profiles, args.out, args.docs)
    print((args.out / "scale_sim.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
