"""scikit-learn 1.9's callback API on DistributedSearchCV: events of fits running in other
processes — loky workers and Dask workers — reach the callback in this process."""

import os

import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from distsk import DistributedSearchCV

from .counting import RecordingCallback, needs_sklearn_callbacks

pytestmark = needs_sklearn_callbacks

X, y = make_classification(n_samples=120, n_features=5, random_state=0)
GRID = {"C": [0.1, 1.0, 10.0]}


def run(backend, client=None):
    callback = RecordingCallback()
    search = DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend=backend,
                                 client=client)
    search.set_callbacks(callback)
    search.fit(X, y)
    return callback


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_local_engines_deliver_every_fit_event(backend):
    callback = run(backend)
    ends = callback.ends("candidate-split-evaluation")
    assert len(ends) == 9
    if backend == "loky":
        assert {r[2] for r in ends} - {os.getpid()}  # they came from other processes


def test_dask_workers_deliver_every_fit_event_through_dask(cli_client):
    callback = run("dask", cli_client.scheduler.address)
    ends = callback.ends("candidate-split-evaluation")
    assert len(ends) == 9
    worker_pids = set(cli_client.run(os.getpid).values())
    assert {r[2] for r in ends} <= worker_pids
    assert len(callback.ends("search")) == 1  # the search's own task ended after them

    def sockets_opened():
        from sklearn.callback import _transport

        return len(_transport._worker_connections)

    # No worker connected to this process's socket: the events travelled through Dask.
    assert set(cli_client.run(sockets_opened).values()) == {0}


def test_progress_bar_on_dask_workers(cli_client, capsys):
    pytest.importorskip("rich", reason="ProgressBar needs rich (the distsk[all] extra)")
    from sklearn.callback import ProgressBar

    search = DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend="dask",
                                 client=cli_client.scheduler.address)
    search.set_callbacks(ProgressBar())
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 3


def test_resumed_fits_end_for_callbacks_and_say_they_were_resumed(tmp_path):
    ckpt = str(tmp_path / "c.sqlite")
    run_kw = dict(cv=3, backend="sequential", checkpoint=ckpt)
    DistributedSearchCV(LogisticRegression(), {"C": GRID["C"][:2]}, **run_kw).fit(X, y)
    callback = RecordingCallback()
    search = DistributedSearchCV(LogisticRegression(), GRID, **run_kw)
    search.set_callbacks(callback)
    search.fit(X, y)
    assert search.n_fits_resumed_ == 6
    ends = callback.ends("candidate-split-evaluation")
    assert len(ends) == 9  # every fit ended, so a progress bar completes
    assert sum(r[3] for r in ends) == 6  # metadata says which ones came from the store


def test_progress_bar_reports_resumed_fits_separately(tmp_path, capsys):
    pytest.importorskip("rich", reason="ProgressBar needs rich (the distsk[all] extra)")
    from sklearn.callback import ProgressBar

    ckpt = str(tmp_path / "c.sqlite")
    run_kw = dict(cv=3, backend="sequential", checkpoint=ckpt)
    DistributedSearchCV(LogisticRegression(), {"C": GRID["C"][:2]}, **run_kw).fit(X, y)
    assert "resumed" not in capsys.readouterr().out  # nothing to resume, nothing said
    search = DistributedSearchCV(LogisticRegression(), GRID, **run_kw)
    search.set_callbacks(ProgressBar())
    search.fit(X, y)
    assert "6 of 9 fits resumed from checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize("earlier", [0, 2])
def test_a_budgeted_search_reports_its_fits_as_run_and_only_the_checkpoints_as_resumed(
        tmp_path, earlier):
    # The two passes: the run reports to no callback; the report serves every fit from
    # the store. Those the run made in this fit ran; only a checkpoint's earlier ones
    # were resumed (#24 s4: every fit was reported as resumed).
    ckpt = str(tmp_path / "c.sqlite")
    run_kw = dict(cv=3, backend="sequential", checkpoint=ckpt)
    if earlier:
        DistributedSearchCV(LogisticRegression(), {"C": GRID["C"][:earlier]},
                            **run_kw).fit(X, y)
    callback = RecordingCallback()
    search = DistributedSearchCV(LogisticRegression(), GRID, time_budget=600, **run_kw)
    search.set_callbacks(callback)
    search.fit(X, y)
    ends = callback.ends("candidate-split-evaluation")
    assert len(ends) == 9
    assert sum(r[3] for r in ends) == 3 * earlier == search.n_fits_resumed_
