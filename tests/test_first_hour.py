"""What a new user meets in the first hour: a wrong address fails at once, distsk's own use
of dask, dask-ml and xgboost raises no warnings in user code, ``verbose=1`` shows progress,
and a fitted estimator shows its plan in a notebook."""

import os
import re
import socket
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from distsk import ClusterUnavailableError, DistributedEstimator

from .conftest import free_port
from .counting import needs_sklearn_callbacks

X, y = make_classification(n_samples=400, n_features=6, random_state=0)


# ---------------------------------------------------------------------------- addresses
@pytest.mark.parametrize("address", ["tcp://127.0.0.1:{port}", "tls://127.0.0.1:{port}"])
def test_refused_address_fails_at_once_every_time_with_the_same_message(address):
    import dask
    import distributed  # noqa: F401 -- its config defaults load before dask.config.set

    from distsk._cluster.client import _by_address

    address = address.format(port=free_port())
    messages = []
    # tls:// is refused before any connection without client credentials; a configured
    # loader counts as credentials, so the refusal is the port's.
    loader = {"distributed.client.security-loader": "distsk.never_called"}
    for _ in range(2):
        start = time.perf_counter()
        with dask.config.set(loader), pytest.raises(ClusterUnavailableError) as info:
            DistributedEstimator(LogisticRegression(), client=address).fit(X, y)
        assert time.perf_counter() - start < 2  # distributed alone retries for 10 s
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert f"Could not connect to a Dask scheduler at {address!r}" in messages[0]
    assert "ConnectionRefusedError" in messages[0]
    assert "Check that `dask scheduler` runs there" in messages[0]
    assert address not in _by_address
    # One error, not a chain of three naming private classes (#25).
    error = info.value
    assert error.__cause__ is None and error.__suppress_context__
    assert "_Refused" not in "".join(traceback.format_exception(error))


def test_silent_address_waits_for_the_timeout_and_says_so():
    from distsk._cluster.client import resolve_client

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(ClusterUnavailableError, match=r"within 1 s") as info:
            resolve_client(address, timeout=1.0)
        assert 0.9 < time.perf_counter() - start < 10
    assert info.value.__cause__ is None  # one error, the cause in its message


# ---------------------------------------------------------------------------- progress
GRID = {"C": [0.1, 1.0, 10.0]}


def _search(backend, client=None, **kw):
    from distsk import DistributedSearchCV

    return DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend=backend,
                               client=client, **kw)


@needs_sklearn_callbacks
@pytest.mark.parametrize("backend", ["sequential", "loky", "dask"])
def test_verbose_1_shows_fits_done_of_total_from_every_engine(backend, request, capsys):
    pytest.importorskip("rich", reason="the progress bar is drawn with rich (distsk[all])")
    client = request.getfixturevalue("client") if backend == "dask" else None
    search = _search(backend, client, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    # Not a terminal here: rich draws the final bar once, at the end.
    assert re.search(r"DistributedSearchCV .* 9/9 fits elapsed \d+:\d\d:\d\d done", out), out
    assert "_skl_callbacks" not in search.__dict__  # the bar was there for this fit only


@pytest.mark.parametrize("backend", ["sequential", "dask"])
def test_verbose_0_is_silent_as_in_sklearn(backend, request, capsys):
    client = request.getfixturevalue("client") if backend == "dask" else None
    _search(backend, client).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@needs_sklearn_callbacks
def test_progress_counts_resumed_fits_apart(tmp_path, capsys):
    pytest.importorskip("rich", reason="the progress bar is drawn with rich (distsk[all])")
    from distsk import DistributedSearchCV

    ckpt = str(tmp_path / "c.sqlite")
    DistributedSearchCV(LogisticRegression(), {"C": GRID["C"][:2]}, cv=3,
                        backend="sequential", checkpoint=ckpt).fit(X, y)
    _search("sequential", checkpoint=ckpt, verbose=1).fit(X, y)
    assert re.search(r"9/9 fits \(6 resumed\) elapsed", capsys.readouterr().out)


def test_progress_counts_a_fit_reported_twice_once(capsys):
    pytest.importorskip("rich", reason="the progress bar is drawn with rich (distsk[all])")
    from distsk._search.progress import _Display

    bar = _Display("search")
    for message in [("total", 2), ("done", (0, False)), ("done", (0, False)),
                    ("done", (1, True))]:  # fit 0 ran twice (a straggler's copy)
        bar.receive(message)
    bar.close()
    assert re.search(r"2/2 fits \(1 resumed\) elapsed", capsys.readouterr().out)


def test_progress_shows_the_time_budget_left_and_that_it_ended_the_search(capsys):
    pytest.importorskip("rich", reason="the progress bar is drawn with rich (distsk[all])")
    from distsk._search.progress import _Display

    bar = _Display("search", budget=45.0)
    bar.receive(("total", 4))
    bar.receive(("done", (0, False)))
    assert re.match(r"remaining 0:00:\d\d, budget left 0:00:4\d$", bar._fields()["remaining"])
    bar._started -= 60  # as if a minute had passed: the 45 s are spent
    assert bar._fields()["remaining"].endswith("budget spent: no fit starts")
    bar.close()
    assert re.search(r"1/4 fits elapsed \d:\d\d:\d\d time budget \(45 s\) ended it",
                     capsys.readouterr().out)


@needs_sklearn_callbacks
def test_progress_bar_is_live_in_a_terminal(tmp_path):
    pytest.importorskip("rich", reason="the progress bar is drawn with rich (distsk[all])")
    script = tmp_path / "search.py"
    script.write_text(
        "from sklearn.datasets import make_classification\n"
        "from distsk import DistributedSearchCV\n"
        "from tests.counting import CountingClassifier\n"
        "X, y = make_classification(n_samples=100, random_state=0)\n"
        "DistributedSearchCV(CountingClassifier(sleep=0.4), {'C': [0.1, 1.0]}, cv=3,\n"
        "                    backend='sequential', verbose=1).fit(X, y)\n"
    )
    root = Path(__file__).resolve().parents[1]
    # TTY_COMPATIBLE=1: rich draws as on a terminal (cursor moves, redraws).
    env = {**os.environ, "TTY_COMPATIBLE": "1", "PYTHONPATH": str(root), "COLUMNS": "100"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", done.stdout)
    states = set(re.findall(r"(\d)/6 fits", plain))
    assert {"1", "3", "5", "6"} <= states, plain[-2000:]  # redrawn while the fits ran
    assert re.search(r"remaining 0:00:0\d", plain)  # an estimate once fits have run


# ---------------------------------------------------------------------------- notebook
def _same_ids(html):
    return re.sub(r"sk-(container-id|estimator-id)-\d+", "sk-id", html)


def test_unfitted_estimators_show_sklearns_own_diagram():
    from sklearn.utils import estimator_html_repr

    from distsk import DistributedSearchCV

    for est in (DistributedEstimator(LogisticRegression()),
                DistributedSearchCV(LogisticRegression(), GRID)):
        html = est._repr_html_()
        assert _same_ids(html) == _same_ids(estimator_html_repr(est))
        assert _same_ids(est._repr_mimebundle_()["text/html"]) == _same_ids(html)
        assert "distsk plan" not in html


def test_fitted_estimator_shows_its_plan_after_the_diagram():
    import html

    est = DistributedEstimator(LogisticRegression(), backend="sequential").fit(X, y)
    out = est._repr_html_()
    diagram_end = out.index("distsk plan")
    assert "sk-top-container" in out[:diagram_end]  # sklearn's diagram comes first
    assert html.escape(est.plan_.headline()) in out
    assert est.plan_.headline().startswith("sequential (in-process)")
    assert html.escape(est.plan_.reason) in out  # folded away in a <details>
    assert "dashboard" not in out  # no cluster ran it
    assert "distsk plan" in est._repr_mimebundle_()["text/html"]


def test_search_run_on_a_cluster_links_its_dashboard(client):
    from distsk import DistributedSearchCV

    search = _search("dask", client).fit(X, y)
    out = search._repr_html_()
    assert ">dask (candidates)" in out
    assert f"Dask scheduler {client.scheduler.address}" in out
    link = client.dashboard_link
    assert f'dashboard: <a href="{link}" target="_blank">{link}</a>' in out
    assert isinstance(search, DistributedSearchCV)


@pytest.mark.parametrize("engine", ["dask", "dask-ml", "xgboost", "xgboost-external-memory"])
def test_every_cluster_engine_names_its_scheduler_in_the_plan(engine):
    # No cluster needed: the plan is what the repr reads.
    from dataclasses import replace

    from distsk._engines import engine_names

    assert set(engine_names(needs_cluster=True)) == {"dask", "dask-ml", "xgboost",
                                                      "xgboost-external-memory"}
    est = DistributedEstimator(LogisticRegression(), backend="sequential").fit(X, y)
    address = "tcp://127.0.0.1:1"
    est.plan_ = replace(est.plan_, executor=engine,
                        compute=replace(est.plan_.compute, client_address=address))
    assert f"Dask scheduler {address}" in est._repr_html_()


# ---------------------------------------------------------------------------- warnings
@pytest.fixture(scope="module")
def big():
    """Over dask's 10 MB large-graph threshold, from numpy (data held in the graph)."""
    Xb, yb = make_classification(n_samples=80_000, n_features=20, random_state=0)
    return Xb, yb


def _engines():
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    yield "sequential", LogisticRegression(), dict(backend="sequential"), False
    yield "loky", RandomForestClassifier(8, random_state=0), dict(backend="loky"), False
    yield "dask", RandomForestClassifier(8, random_state=0), dict(backend="dask"), False
    yield "dask-ml translated", LogisticRegression(), dict(max_gather_bytes=0), True
    yield "dask-ml kmeans", KMeans(3, n_init=1, random_state=0), dict(max_gather_bytes=0), True
    yield "dask-ml pca", PCA(3), dict(max_gather_bytes=0), True
    yield "dask-ml scaler", StandardScaler(), dict(max_gather_bytes=0), True
    yield "dask-ml incremental", SGDClassifier(random_state=0), dict(max_gather_bytes=0), True


@pytest.mark.slow
def test_no_engine_lets_a_warning_of_distsks_own_making_reach_user_code(client, big):
    pytest.importorskip("dask_ml", reason="the dask-ml engine needs distsk[dask-ml]")
    pytest.importorskip("xgboost", reason="the xgboost engine needs distsk[xgboost]")
    import dask.array as da
    import xgboost

    from distsk import DistributedSearchCV

    Xb, yb = big
    engines = [*_engines(), ("xgboost", xgboost.XGBClassifier(n_estimators=5),
                             dict(max_gather_bytes=0), True)]
    ran = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, est, kw, lazy in engines:
            Xd = da.from_array(Xb, chunks=(20_000, -1)) if lazy else Xb[:2000]
            yd = da.from_array(yb, chunks=20_000) if lazy else yb[:2000]
            fitted = DistributedEstimator(est, client=client, **kw).fit(Xd, yd)
            ran.append((name, fitted.plan_.executor))
        for backend in ("sequential", "loky", "dask"):
            DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend=backend,
                                client=client).fit(Xb[:2000], yb[:2000])
        # Dask input distsk gathers into this process or assembles on the workers: each
        # path forced by its backend; "auto" measures the input and plans with the cost
        # model, whose choice between the two is not this test's (it follows fit times
        # measured earlier in the process).
        Xd, yd = da.from_array(Xb, chunks=(20_000, -1)), da.from_array(yb, chunks=20_000)
        auto = DistributedEstimator(LogisticRegression(), client=client).fit(Xd, yd)
        gathered = DistributedEstimator(LogisticRegression(), backend="sequential",
                                        client=client).fit(Xd, yd)
        on_workers = DistributedEstimator(LogisticRegression(), backend="dask",
                                          client=client).fit(Xd, yd)
        searches = [DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend=backend,
                                        client=client).fit(Xd, yd)
                    for backend in ("loky", "dask")]
    assert gathered.plan_.gather and on_workers.plan_.on_workers
    assert auto.plan_.gather or auto.plan_.on_workers
    assert searches[0].plan_.gather and searches[1].plan_.on_workers
    assert [executor for _, executor in ran] == [
        "sequential", "loky", "dask", "dask-ml", "dask-ml", "dask-ml", "dask-ml", "dask-ml",
        "xgboost",
    ]


# ---------------------------------------------------------------------------- documented commands
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # what a command's ".venv/bin/" means here


def _rst_blocks(text, language):
    """The code blocks of ``language`` in reStructuredText, dedented."""
    import textwrap

    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f".. code-block:: {language}":
            indent = len(line) - len(line.lstrip())
            body = []
            for following in lines[i + 2:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            blocks.append(textwrap.dedent("\n".join(body)).strip())
    return blocks


def _documented_commands():
    """(source, command) for every shell command the README and getting-started show."""
    readme = (ROOT / "README.md").read_text()
    rst = (ROOT / "docs" / "getting_started.rst").read_text()
    shell = re.findall(r"```bash\n(.*?)```", readme, re.S) + _rst_blocks(rst, "bash")
    inline = re.findall(r"`((?:\.venv/bin/|python3 -m venv)[^`]+)`", readme + rst)
    out = []
    for source, text in [("block", "\n".join(shell)), ("inline", "\n".join(inline))]:
        for line in text.splitlines():
            line = line.split(" #")[0].strip()
            out += [(source, cmd.strip()) for cmd in line.split("&&") if cmd.strip()]
    return out


def _extras():
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def _run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _check_command(cmd):
    import shlex

    argv = shlex.split(cmd)
    if argv[:3] == ["python3", "-m", "venv"]:
        assert argv[3:] == [".venv"], cmd
        return
    assert argv[0].startswith(".venv/bin/"), f"{cmd!r} does not use the virtual environment"
    exe = VENV_BIN / argv[0].removeprefix(".venv/bin/")
    assert exe.exists(), f"{cmd!r}: no {exe.name} in the environment"
    name, args = exe.name, argv[1:]
    if not args:  # the program named, as in "use .venv/bin/python"
        return
    if name == "pip":
        assert args[0] == "install", cmd
        for target in (a for a in args[1:] if a != "-e"):
            match = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", target)
            assert match, f"{cmd!r} installs {target!r}, not the clone"
            assert set((match.group(1) or "").split(",")) - {""} <= _extras(), cmd
    elif name == "distsk" and args[0] in ("demo", "bench"):
        # The demo itself runs in test_cli_and_tutorial; here: its options exist.
        done = _run([str(exe), args[0], "--help"])
        assert done.returncode == 0, done.stderr
        for option in (a for a in args[1:] if a.startswith("-")):
            assert option in done.stdout, f"{cmd!r}: no option {option}"
    elif name == "distsk":
        done = _run([str(exe), *args])
        assert done.returncode == 0, done.stderr
    elif name == "python" and args[:2] == ["-m", "pytest"]:
        assert _run([str(exe), "-m", "pytest", "--version"]).returncode == 0
    elif name == "python":
        script, options = args[0], [a for a in args[1:] if a.startswith("-")]
        done = _run([str(exe), script, "--help"])
        assert done.returncode == 0, done.stderr
        assert all(option in done.stdout for option in options), cmd
    elif name == "sphinx-build":  # the build itself: the docs CI job (-W)
        assert (ROOT / args[-2] / "conf.py").is_file(), cmd
        assert _run([str(exe), "--version"]).returncode == 0
    else:
        raise AssertionError(f"no check for the documented command {cmd!r}")


def test_readme_and_getting_started_commands_work_in_the_clone():
    commands = _documented_commands()
    assert ("block", 'python3 -m venv .venv') in commands
    assert ("block", '.venv/bin/pip install ".[all]"') in commands
    assert ("block", ".venv/bin/distsk demo") in commands
    for _, cmd in commands:
        assert not re.match(r"(pip|python|sphinx-build|distsk) ", cmd), \
            f"{cmd!r} runs outside the virtual environment"
        _check_command(cmd)
    # Commands quoted in the prose use the environment too, except these two: the one
    # said to fail, and the package an engine's error names (for any environment).
    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "getting_started.rst").read_text()
    outside = set(re.findall(r"`((?:pip|python|sphinx-build) [^`]+)`", text))
    assert outside <= {"pip install distsk", "pip install dask-ml"}, outside


def test_getting_started_python_examples_run(client):
    namespace = {"client": client}  # the page's client, connected to a real cluster
    ran = 0
    for block in _rst_blocks((ROOT / "docs" / "getting_started.rst").read_text(), "python"):
        if "scheduler-host" in block:
            continue  # a placeholder address, for the reader's own cluster
        if block.startswith(">>>"):
            block = "\n".join(line[4:] for line in block.splitlines()
                              if line.startswith((">>> ", "... ")))
        exec(compile(block, "getting_started.rst", "exec"), namespace)
        ran += 1
    assert ran >= 4
    assert namespace["est"].plan_.strategy == "split-forest"  # the page says so


@needs_sklearn_callbacks
def test_in_a_notebook_the_bar_and_the_plan_are_cell_outputs():
    pytest.importorskip("rich", reason="the progress bar is drawn with rich (distsk[all])")
    pytest.importorskip("nbclient", reason="runs a notebook: needs nbclient and ipykernel "
                        "(not in distsk[dev]: pip install nbclient ipykernel)")
    pytest.importorskip("ipykernel", reason="runs a notebook: needs nbclient and ipykernel "
                        "(not in distsk[dev]: pip install nbclient ipykernel)")
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "from sklearn.datasets import make_classification\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from distsk import DistributedEstimator, DistributedSearchCV\n"
        "X, y = make_classification(n_samples=100, random_state=0)",
        "DistributedSearchCV(LogisticRegression(), {'C': [0.1, 1.0, 10.0]}, cv=3,\n"
        "                    backend='loky', verbose=1).fit(X, y);",
        "DistributedEstimator(LogisticRegression(), backend='sequential').fit(X, y)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = nb.cells[1].outputs
    bars = [out["data"]["text/html"] for out in outputs if out["output_type"] == "display_data"]
    assert len(bars) == 1  # one output, updated in place
    # sklearn's line comes before any fit: above the bar, which shows at the first fit.
    kinds = [(out["output_type"], out.get("text", "")) for out in outputs]
    fitting = next(i for i, (kind, text) in enumerate(kinds) if "Fitting 3 folds" in text)
    assert fitting < next(i for i, (kind, _) in enumerate(kinds) if kind == "display_data")
    assert re.search(r"9/9.*fits elapsed.*done", re.sub(r"<[^>]+>", "", bars[0]))
    (result,) = nb.cells[2].outputs
    assert "distsk plan" in result["data"]["text/html"]


# ---------------------------------------------------------------------- a readable plan
def test_the_plan_reads_as_a_headline_and_a_table_of_the_engines(capsys, monkeypatch):
    # #25: verbose=1 printed one plan line of about 700 characters, wrapped mid-word.
    from distsk import DistributedSearchCV

    monkeypatch.setenv("COLUMNS", "80")
    search = DistributedSearchCV(LogisticRegression(), GRID, cv=3, verbose=1).fit(X, y)
    printed = capsys.readouterr().out.splitlines()
    plan = search.plan_
    first = next(i for i, line in enumerate(printed)
                 if line.startswith(f"[distsk] {plan.executor} ("))
    assert len(printed[first]) <= len("[distsk] ") + 100 and len(plan.headline()) <= 100
    engines = [q.engine for q in plan.predictions]
    assert len(engines) >= 2, engines  # "auto" compared engines
    table = printed[first + 1: first + 2 + len(engines)]
    assert all(len(line) <= 80 for line in table), table
    assert table[0].split() == ["engine", "predicted", "peak", "memory"]
    chosen = [line for line in table if line.lstrip().startswith("*")]
    assert len(chosen) == 1 and plan.executor in chosen[0]
    assert f"{len(GRID['C']) * 3} fits" in plan.headline()
    # After the fit: the actual time in the headline and the table; the full reason kept.
    assert "took " in plan.headline() and "actual" in plan.table()
    assert len(plan.reason) > len(plan.headline())
    others = sorted((q for q in plan.predictions if q.engine != plan.executor
                     and q.seconds is not None and q.fits_memory), key=lambda q: q.seconds)
    if others:
        assert f"next best {others[0].engine}" in plan.headline()


def test_in_a_notebook_each_engine_gets_a_bar():
    from distsk import DistributedSearchCV

    search = DistributedSearchCV(LogisticRegression(), GRID, cv=3).fit(X, y)
    out = search._repr_html_()
    engines = out[out.index('<table class="distsk-engines">'):]
    engines = engines[: engines.index("</table>")]
    for q in search.plan_.predictions:
        assert f">{q.engine}<" in engines
    assert "(chosen)" in engines
    # one bar per predicted time, and one for the actual time of the engine that ran
    n_predicted = sum(q.seconds is not None for q in search.plan_.predictions)
    assert engines.count("display:inline-block") == n_predicted + 1
