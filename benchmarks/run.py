"""Run distsk's benchmarks side by side and write results.json, results.md, results.png.

    python benchmarks/run.py [--quick] [--smoke] [--scenarios a,b] [--repeat N] [--out DIR]

One 2-worker loopback LocalCluster (worker processes, one thread each, dashboard off)
is started once and shared by every scenario. Scenarios live in ``scenarios.py``;
timing and records in ``harness.py``; the output files in ``report.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported rather than run as a script
    sys.path.insert(0, str(HERE))

import xgboost_memory  # noqa: E402,F401  (registers xgboost-larger-than-memory)
from harness import Context, Sizes  # noqa: E402
from report import (  # noqa: E402
    auto_table,
    markdown_table,
    write_chart,
    write_json,
    write_markdown,
)
from scenarios import SCENARIOS  # noqa: E402

DEFAULT_OUT = HERE / "results"
N_WORKERS = 2
THREADS_PER_WORKER = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Compare distsk with plain scikit-learn, joblib's Dask backend and "
        "dask-ml, side by side on one shared loopback Dask cluster.",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="one timed run per contender (default: 3); ~10 min at most")
    size.add_argument("--smoke", action="store_true",
                      help="~10x smaller data and grids, one run: checks everything runs; "
                      "the timings mean nothing")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of: {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per contender (overrides --quick's 1 and the default 3)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"output directory (default: {DEFAULT_OUT.relative_to(HERE.parent)})")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        p.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = names
    if args.repeat is None:
        args.repeat = 1 if (args.quick or args.smoke) else 3
    elif args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    return args


def _warm(optional: bool = False) -> None:
    """Import what the scenarios run (shipped by value to workers: defined in __main__)."""
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401

    import distsk  # noqa: F401

    if optional:  # dask-ml's import alone takes seconds; no contender should pay for it
        with contextlib.suppress(ImportError):
            import dask_ml.linear_model  # noqa: F401
            import dask_ml.model_selection  # noqa: F401


def warm_up(client) -> None:
    """Load this process, start the loky pool and load the Dask workers before timing.

    These are shared by every contender; without this, whichever contender first uses
    one pays its start-up (seconds) and the comparison says more about the order than
    about the tools. Cheap when already warm, so it runs before every scenario (loky
    shuts idle workers down after 5 minutes).
    """
    from joblib import Parallel, delayed

    from distsk._decide.profile import local_cores

    _warm(optional=True)
    Parallel(n_jobs=-1)(delayed(_warm)() for _ in range(2 * local_cores()))
    client.run(_warm)


def environment(args, client, started: str, wall: float) -> dict:
    from distsk._decide.profile import local_cores, profile_compute
    from distsk.cli import collect_versions

    comp = profile_compute(client)
    return {
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
        "repeat": args.repeat,
        "scenarios": args.scenarios,
        "local_cores": local_cores(),
        "cluster": f"{comp.n_workers} workers x {THREADS_PER_WORKER} thread (processes, "
        "127.0.0.1)",
        "versions": {name: v for name, v in collect_versions() if v is not None},
        "started": started,
        "wall_s": round(wall, 1),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from distsk._cluster.client import embedded_cluster

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    sizes = Sizes.smoke() if args.smoke else Sizes()
    started = datetime.datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    records: list[dict] = []
    with embedded_cluster(n_workers=N_WORKERS, threads_per_worker=THREADS_PER_WORKER,
                          dashboard=False) as client:
        ctx = Context(client=client, repeat=args.repeat, sizes=sizes, smoke=args.smoke)
        for name in args.scenarios:
            ctx.log(f"scenario {name} ...")
            warm_up(client)
            records += SCENARIOS[name](ctx)
        env = environment(args, client, started, time.perf_counter() - t0)

    write_json(records, out / "results.json")
    (out / "environment.json").write_text(json.dumps(env, indent=2) + "\n")
    chart_note = write_chart(records, out / "results.png")
    write_markdown(records, env, out / "results.md", extra=chart_note)
    print(markdown_table(records))
    print("\n" + auto_table(records))
    print(f"\n{chart_note}\nWrote {out / 'results.json'}, {out / 'results.md'} "
          f"({env['wall_s']:.0f} s).")

    # distsk's own contenders must be correct; other tools' deviations are only reported.
    bad = [r for r in records if r["contender"].startswith("distsk")
           and (r["median_s"] is None or r["equal_to_sklearn"] is False)]
    for r in bad:
        print(f"FAILED: {r['scenario']} / {r['contender']}: {r['notes']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
