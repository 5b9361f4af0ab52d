"""A search whose client sits behind a 100 Mbit/s link (issue #23 section 3).

The client runs in a network namespace of its own, joined to this one by a veth pair;
the scheduler and WORKERS workers run here, on this side's address of the pair, so
only the client's traffic crosses the link (scheduler and workers talk over local
addresses). The link is shaped both ways with ``tc qdisc ... tbf`` (netem does not
exist on this kernel): the namespace's end (what the client sends) and this side's end
(what it receives). What is measured, per run of one ``DistributedSearchCV.fit`` (the
client's connection made before): the wall time, and the bytes the client sent and
received over the link (the namespace end's counters), against the size of X.

The fits sleep (``benchmarks/sleepy.py``): no CPU, so the time is the data path and
the orchestration. Medians of REPEATS runs, unshaped and shaped, alternating.

Run as root (``ip netns``, ``tc``): ``python benchmarks/slow_link.py`` (about two
minutes); ``--mb``, ``--repeat``, ``--rate`` change the defaults. Results:
``benchmarks/results/slow_link.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 3
REPEATS = 3
N_CANDIDATES, N_FOLDS, FIT_SECONDS = 8, 3, 0.1


# ---------------------------------------------------------------------- client side
def client_main(address: str, mb: float, dev: str) -> None:
    """In the namespace: one search over ``mb`` MB of X; prints a JSON line."""
    import numpy as np
    from distributed import Client

    sys.path.insert(0, str(ROOT))
    from benchmarks.sleepy import SleepyClassifier
    from distsk import DistributedSearchCV

    rng = np.random.RandomState(0)
    n_features = 50
    rows = int(mb * 1e6 / (8 * n_features))
    X = rng.rand(rows, n_features)
    y = rng.randint(0, 2, rows)
    stats = Path(f"/sys/class/net/{dev}/statistics")

    def counters():
        return (int((stats / "tx_bytes").read_text()), int((stats / "rx_bytes").read_text()))

    with Client(address, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(WORKERS, timeout=30)
        tx0, rx0 = counters()
        start = time.perf_counter()
        search = DistributedSearchCV(
            SleepyClassifier(seconds=FIT_SECONDS),
            {"C": [float(c) for c in range(1, N_CANDIDATES + 1)]}, cv=N_FOLDS,
            backend="dask", client=client, refit=False)
        search.fit(X, y)
        seconds = time.perf_counter() - start
        tx1, rx1 = counters()
    print(json.dumps({"seconds": seconds, "sent": tx1 - tx0, "received": rx1 - rx0,
                      "x_bytes": X.nbytes, "y_bytes": y.nbytes,
                      "fits": search.n_fits_performed_}), flush=True)


# ---------------------------------------------------------------------- this side
def _run(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=check)


class Setup:
    """Namespace, veth pair, scheduler and workers; ``close`` removes them all."""

    def __init__(self, tmp: Path):
        tag = str(os.getpid())
        self.ns, self.tmp = f"distsk-sl-{tag}", tmp
        self.root_dev, self.inner_dev = f"dsl{tag}r", f"dsl{tag}n"
        used = _run("ip", "-4", "-o", "addr").stdout + _run(
            "ip", "-4", "route", "show", "table", "all").stdout
        third = next(t for t in ((os.getpid() + k) % 256 for k in range(256))
                     if f"10.213.{t}." not in used)
        self.root, self.inner = f"10.213.{third}.1", f"10.213.{third}.2"
        self.procs: list[subprocess.Popen] = []
        _run("ip", "netns", "add", self.ns)
        try:
            _run("ip", "link", "add", self.root_dev, "type", "veth", "peer", "name",
                 self.inner_dev, "netns", self.ns)
            _run("ip", "addr", "add", f"{self.root}/30", "dev", self.root_dev)
            _run("ip", "link", "set", self.root_dev, "up")
            _run("ip", "-n", self.ns, "addr", "add", f"{self.inner}/30", "dev", self.inner_dev)
            _run("ip", "-n", self.ns, "link", "set", self.inner_dev, "up")
            _run("ip", "-n", self.ns, "link", "set", "lo", "up")
            self._cluster()
        except BaseException:
            self.close()
            raise

    def _cluster(self):
        dask = str(Path(sys.executable).with_name("dask"))
        if not Path(dask).exists():
            dask = shutil.which("dask")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        sfile = self.tmp / "scheduler.json"
        self.procs.append(subprocess.Popen(
            [dask, "scheduler", "--host", self.root, "--port", "0", "--no-dashboard",
             "--dashboard-address", f"{self.root}:0", "--scheduler-file", str(sfile)],
            stdout=subprocess.DEVNULL, stderr=open(self.tmp / "scheduler.log", "w"), env=env))
        deadline = time.monotonic() + 30
        while not sfile.exists() or not sfile.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not start")
            time.sleep(0.1)
        self.address = json.loads(sfile.read_text())["address"]
        for i in range(WORKERS):
            self.procs.append(subprocess.Popen(
                [dask, "worker", self.address, "--nthreads", "1", "--no-nanny",
                 "--host", self.root, "--no-dashboard", "--dashboard-address",
                 f"{self.root}:0", "--name", f"w{i}"],
                stdout=subprocess.DEVNULL, stderr=open(self.tmp / f"w{i}.log", "w"), env=env))

    def shape(self, rate: str | None):
        """Hold both directions of the link to ``rate`` (tbf), or lift the limit."""
        for prefix, dev in ((["-n", self.ns], self.inner_dev), ([], self.root_dev)):
            _run("tc", *prefix, "qdisc", "del", "dev", dev, "root", check=False)
            if rate:
                _run("tc", *prefix, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
                     "burst", "256kb", "latency", "100ms")

    def search(self, mb: float) -> dict:
        out = _run("ip", "netns", "exec", self.ns, sys.executable, __file__, "--client",
                   self.address, "--mb", str(mb), "--dev", self.inner_dev)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def close(self):
        for p in self.procs[::-1]:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        _run("ip", "netns", "del", self.ns, check=False)
        if _run("ip", "link", "show", self.root_dev, check=False).returncode == 0:
            _run("ip", "link", "del", self.root_dev, check=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client")
    parser.add_argument("--dev")
    parser.add_argument("--mb", type=float, default=40.0)
    parser.add_argument("--repeat", type=int, default=REPEATS)
    parser.add_argument("--rate", default="100mbit")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.client:
        return client_main(args.client, args.mb, args.dev)
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        sys.exit("needs root, `ip` and `tc`")
    import tempfile

    runs: dict[str, list[dict]] = {"unshaped": [], args.rate: []}
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(Path(tmp))
        try:
            setup.search(1.0)  # warm up: imports on the workers, the first connections
            for _ in range(args.repeat):
                for name in runs:
                    setup.shape(None if name == "unshaped" else name)
                    runs[name].append(setup.search(args.mb))
                    print(name, runs[name][-1], flush=True)
        finally:
            setup.close()
    x_bytes = runs["unshaped"][0]["x_bytes"]
    summary = {name: {"seconds": statistics.median(r["seconds"] for r in rs),
                      "sent_mb": statistics.median(r["sent"] for r in rs) / 1e6,
                      "received_mb": statistics.median(r["received"] for r in rs) / 1e6,
                      "sent_over_x": statistics.median(r["sent"] for r in rs) / x_bytes}
               for name, rs in runs.items()}
    shaped = summary[args.rate]
    transfer = x_bytes * 8 / _bits(args.rate)
    lines = [
        f"# A search behind a {args.rate} link ({time.strftime('%Y-%m-%d')})",
        "",
        f"X: {x_bytes / 1e6:.1f} MB; {N_CANDIDATES} candidates x {N_FOLDS} folds of "
        f"{FIT_SECONDS} s sleeping fits on {WORKERS} workers x 1 thread; medians of "
        f"{args.repeat}.",
        "",
        "| link | search (s) | sent by the client (MB) | sent / X | received (MB) |",
        "|---|---|---|---|---|",
        *[f"| {name} | {s['seconds']:.2f} | {s['sent_mb']:.1f} | {s['sent_over_x']:.3f} | "
          f"{s['received_mb']:.2f} |" for name, s in summary.items()],
        "",
        f"X once at {args.rate}: {transfer:.2f} s; the shaped search took "
        f"{shaped['seconds'] - summary['unshaped']['seconds']:.2f} s longer.",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "slow_link.json").write_text(json.dumps({"runs": runs, "summary": summary},
                                                   indent=1))
    (out / "slow_link.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _bits(rate: str) -> float:
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, factor in units.items():
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * factor
    return float(rate)


if __name__ == "__main__":
    main()
