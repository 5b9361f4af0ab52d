"""Real clusters for the tests: a LocalCluster of worker processes, and a cluster started
as `dask scheduler` / `dask worker` OS processes reached by address, as a user's would be.
Both live on 127.0.0.1 only and are started once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONNECT_TIMEOUT = 30


def pytest_report_collectionfinish(config):
    """The random test order's seed, shown even under -q (pytest-randomly's own header
    line is not): `pytest -p randomly -p no:cacheprovider --randomly-seed=N` reruns that
    order (README, Running the tests)."""
    seed = _randomly_seed(config)
    return [] if seed is None else [f"distsk: tests in random order, --randomly-seed={seed}"]


def pytest_terminal_summary(terminalreporter, config):
    seed = _randomly_seed(config)
    if seed is not None:
        terminalreporter.write_line(
            f"distsk: test order from --randomly-seed={seed} (pass it to rerun this order)")


def _randomly_seed(config):
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    return getattr(config.option, "randomly_seed", None)


@pytest.fixture(autouse=True)
def _fresh_learned_costs():
    """Each test plans as a fresh process would after its overheads were measured: what
    earlier tests taught the process default (corrections, fit rates, the bandwidth;
    distsk/_decide/learned.py) would otherwise make backend="auto" choose by test order.
    The measured loky and Dask overheads are shared (measured once, as a process
    measures them; not learned from the work earlier tests ran)."""
    from distsk._decide.learned import LearnedCosts, learned_costs, use_learned_costs

    use_learned_costs(LearnedCosts(overheads=learned_costs().overheads))
    yield


@pytest.fixture(scope="session")
def local_cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def client(local_cluster):
    """A client to the LocalCluster; NOT the default client (tests opt in)."""
    from distributed import Client

    with Client(local_cluster, set_as_default=False, timeout=CONNECT_TIMEOUT) as c:
        c.wait_for_workers(2, timeout=CONNECT_TIMEOUT)
        yield c


@pytest.fixture
def active_client(client):
    """The LocalCluster client as the active (default) client for one test."""
    with client.as_current():
        yield client


def _dask_cli() -> str:
    exe = Path(sys.executable).with_name("dask")
    return str(exe) if exe.exists() else shutil.which("dask")


class CLICluster:
    """`dask scheduler` + `dask worker` processes on 127.0.0.1, reached by address.

    ``extra_args`` are added to the scheduler's and every worker's command (e.g. the
    ``--tls-*`` options); ``security`` is then what a client needs to reach the cluster,
    whose address is ``tls://``.
    """

    def __init__(self, tmp: Path, n_workers: int = 2, extra_env=None, extra_args=(),
                 security=None):
        self.tmp = tmp
        self.security = security
        scheme = "tls" if security is not None else "tcp"
        self.scheduler_file = tmp / "scheduler.json"
        # Workers import test estimators (tests.counting) like a user's own module.
        root = str(Path(__file__).resolve().parents[1])
        pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "True",
               "PYTHONPATH": pythonpath, **(extra_env or {})}
        self.procs = [
            subprocess.Popen(
                [_dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", "0",
                 # --no-dashboard still serves HTTP health routes, on 0.0.0.0:8787
                 # unless told otherwise: keep them on loopback too.
                 "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                 "--scheduler-file", str(self.scheduler_file), *extra_args],
                stdout=subprocess.DEVNULL, stderr=open(tmp / "scheduler.log", "w"), env=env,
            )
        ]
        deadline = time.time() + CONNECT_TIMEOUT
        while not self.scheduler_file.exists() or not self.scheduler_file.read_text().strip():
            if time.time() > deadline or self.procs[0].poll() is not None:
                self.close()
                raise RuntimeError("dask scheduler did not start: " + (tmp / "scheduler.log").read_text())
            time.sleep(0.1)
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        assert self.address.startswith(f"{scheme}://127.0.0.1:")
        self._env, self._extra_args = env, extra_args
        for i in range(n_workers):
            self.add_worker(f"cli-worker-{i}")

    def add_worker(self, name: str, nthreads: int = 1, extra_env=None):
        """Start one more `dask worker` process (it joins whenever it is ready)."""
        proc = subprocess.Popen(
            [_dask_cli(), "worker", self.address, "--nthreads", str(nthreads),
             "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
             "--name", name, *self._extra_args],
            stdout=subprocess.DEVNULL, stderr=open(self.tmp / f"{name}.log", "w"),
            env={**self._env, **(extra_env or {})},
        )
        self.procs.append(proc)
        return proc

    def wait_for_workers(self, n: int = 2):
        from distributed import Client

        with Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False,
                    security=self.security) as c:
            c.wait_for_workers(n, timeout=CONNECT_TIMEOUT)
        return self

    def close(self):
        # Workers first, while their scheduler still answers (a worker that loses its
        # scheduler first waits out its nanny's grace period), then the scheduler.
        workers, scheduler = self.procs[1:], self.procs[:1]
        for group in (workers, scheduler):
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)


@pytest.fixture(scope="session")
def cli_cluster(tmp_path_factory):
    cluster = CLICluster(tmp_path_factory.mktemp("cli-cluster"))
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def cli_client(cli_cluster):
    from distributed import Client

    with Client(cli_cluster.address, set_as_default=False, timeout=CONNECT_TIMEOUT) as c:
        c.wait_for_workers(2, timeout=CONNECT_TIMEOUT)
        yield c


@pytest.fixture
def fragile_cluster(tmp_path):
    """A CLI cluster of its own (the test kills parts of it); one retry per task."""
    cluster = CLICluster(tmp_path, extra_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    yield cluster.wait_for_workers(2)
    cluster.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
