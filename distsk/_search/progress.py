"""``verbose=1`` on a search: a live progress bar of its fits, from every engine.

The bar is a scikit-learn fit callback. Its hooks run wherever a fit runs (this process,
a loky worker, a Dask worker) and send one small message through sklearn's callback
transport, which distsk forwards from Dask workers; the bar lives in this process and is
drawn with rich: live in a terminal, as an output that updates in place in a Jupyter
notebook, and once, at the end, anywhere else (a pipe, a log file).
"""

from __future__ import annotations

import contextlib
import threading
import time

__all__ = ["progress_bar", "SearchProgress"]

#: Seconds between two redraws in a notebook (a terminal redraws with rich's own timer).
NOTEBOOK_REFRESH = 0.5


@contextlib.contextmanager
def progress_bar(search):
    """Show a :class:`SearchProgress` bar while ``search`` fits, if ``search.verbose > 0``.

    The bar is one of the search's callbacks for the duration of the fit only; callbacks
    the user set stay as they were.
    """
    if not search.verbose or search.verbose <= 0:
        yield None
        return
    from importlib.util import find_spec

    from .._compat import CALLBACKS_NEED, HAS_CALLBACKS

    if not HAS_CALLBACKS:
        import sklearn

        print(f"[distsk] No progress bar: it is a scikit-learn fit callback, which needs "
              f"{CALLBACKS_NEED} (scikit-learn {sklearn.__version__} is installed).",
              flush=True)
        yield None
        return
    if find_spec("rich") is None:
        print("[distsk] No progress bar: it is drawn with rich, which is not installed "
              '(pip install rich, or install distsk with its "[all]" extra).', flush=True)
        yield None
        return
    bar = SearchProgress(f"{type(search).__name__}",
                         budget=getattr(search, "time_budget", None))
    own = search.__dict__.get("_skl_callbacks")
    search._skl_callbacks = [*(own or []), bar]
    try:
        yield bar
    finally:
        if own is None:
            search.__dict__.pop("_skl_callbacks", None)
        else:
            search._skl_callbacks = own


class SearchProgress:
    """A fit callback drawing a search's progress: fits done of total, how many were
    resumed from a checkpoint, elapsed and remaining time.

    The remaining time is estimated from the fits run in this fit only (resumed fits
    take no time). Each (candidate, fold) counts once, by its task id, even if its
    events arrive twice (a copy of a slow unit run elsewhere). With a ``budget``
    (``time_budget``, seconds) the bar shows the budget left, and, when the budget
    ended the search before every fit ran, says so.
    """

    #: Counts a fit reported twice once (by task id): the search may copy a
    #: straggling unit while the bar shows (``has_callbacks(copies_ok=True)``).
    distsk_copies_ok = True

    def __init__(self, description: str = "search", budget: float | None = None):
        self.description = description
        self.budget = budget
        self._handle = None
        self._display = None
        self._fed = False

    def __getstate__(self):
        # Travels to workers with the fits' contexts: the listener's address is enough.
        return {"description": self.description, "budget": self.budget,
                "_handle": self._handle, "_display": None, "_fed": self._fed}

    # -- in this process
    def setup(self, estimator, context):
        from .._compat import callback_transport as transport

        self._display = _Display(self.description, self.budget)
        if self._fed:
            self._display.receive(("engine-fed", None))
        self._handle = transport.open_listener(self._display.receive)

    def teardown(self, estimator, context):
        from .._compat import callback_transport as transport

        if self._handle is not None:
            transport.close_listener(self._handle)
        if self._display is not None:
            self._display.close()
        self._handle = self._display = None

    # -- wherever the fit runs
    def on_fit_task_begin(self, estimator, context, **kwargs):
        if context.task_name == "search":
            self._send(("total", context.max_subtasks))
        elif context.task_name == "refit-with-best-params":
            self._send(("refit", None))

    def on_fit_task_end(self, estimator, context, *, metadata=None, **kwargs):
        if context.task_name == "candidate-split-evaluation":
            resumed = bool((metadata or {}).get("distsk_resumed"))
            self._send(("done", (context.task_id, resumed)))

    # -- in this process, from the search
    def dropped(self, n_candidates: int, n_fits: int) -> None:
        """``early_drop`` dropped ``n_candidates``: ``n_fits`` fits will not run."""
        self._tell(("dropped", (n_candidates, n_fits)))

    def engine_fed(self) -> None:
        """From now on the search's engine reports the fits (:meth:`ran`); the callbacks'
        reports are ignored (a budgeted or early-dropping search's report pass replays
        every fit to them, as resumed)."""
        self._fed = True
        self._tell(("engine-fed", None))

    def ran(self, n: int, resumed: bool = False) -> None:
        """``n`` fits ended (``resumed``: read back from the checkpoint)."""
        self._tell(("ran", (n, resumed)))

    def _tell(self, message) -> None:
        if self._display is not None:
            self._display.receive(message)

    def _send(self, message):
        from .._compat import callback_transport as transport

        if self._handle is not None:
            transport.send(self._handle, message)


class _Display:
    """The rich bar in this process; ``receive`` is called from the transport's threads."""

    def __init__(self, description: str, budget: float | None = None):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._lock = threading.Lock()
        self._description = description
        self._budget = budget
        self._started = time.monotonic()
        self._done = self._resumed = 0
        self._dropped = self._skipped = 0  # early_drop: candidates, fits not run
        self._fed = False  # fits counted from the engine's reports (``ran``) only
        self._total = None
        self._seen: set = set()  # fits counted, by task id: a fit run twice counts once
        console = Console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("fits{task.fields[resumed]}"),
            TextColumn("elapsed"), TimeElapsedColumn(),
            TextColumn("{task.fields[remaining]}"),
            console=console,
            auto_refresh=not console.is_jupyter,
        )
        self.task = self.progress.add_task(description, total=None, resumed="",
                                           remaining="remaining -:--:--")
        # In a notebook the bar is a cell output, shown at the first fit: sklearn's
        # "Fitting K folds..." line, printed before any fit, then stays above it.
        self._notebook = None
        self._jupyter = console.is_jupyter
        if not self._jupyter:
            self.progress.start()

    def receive(self, message):
        kind, value = message
        with self._lock:
            if kind == "total":
                self._total = value
            elif kind == "dropped":
                self._dropped += value[0]
                self._skipped += value[1]
            elif kind == "engine-fed":
                self._fed = True
            elif kind == "ran":
                self._done += value[0]
                self._resumed += value[0] if value[1] else 0
            elif kind == "done" and not self._fed and value[0] not in self._seen:
                self._seen.add(value[0])
                self._done += 1
                self._resumed += value[1]
            fields = self._fields(kind == "refit")
            if self._jupyter and self._notebook is None and kind in ("done", "ran"):
                self._notebook = _NotebookOutput(self.progress)
        self.progress.update(self.task, **fields)

    def _fields(self, refit=False) -> dict:
        run = self._done - self._resumed
        remaining = "remaining -:--:--"
        total = None if self._total is None else self._total - self._skipped
        if total is not None and run > 0:
            per_fit = (time.monotonic() - self._started) / run
            remaining = f"remaining {_clock(per_fit * (total - self._done))}"
        if self._budget is not None:
            left = self._budget - (time.monotonic() - self._started)
            remaining += (f", budget left {_clock(left)}" if left > 0
                          else ", budget spent: no fit starts")
        if refit or (total is not None and self._done >= total):
            remaining = "refitting the best candidate" if refit else "done"
        notes = [f"{self._resumed} resumed"] if self._resumed else []
        if self._dropped:
            notes.append(f"{self._dropped} candidates dropped")
        return dict(
            total=total, completed=self._done,
            resumed=f" ({', '.join(notes)})" if notes else "",
            remaining=remaining,
        )

    def close(self):
        with self._lock:
            fields = self._fields()
        if fields["remaining"].startswith("refitting"):
            fields["remaining"] = "done"
        elif self._budget is not None and self._total and self._done < self._total:
            fields["remaining"] = f"time budget ({self._budget:g} s) ended it"
        self.progress.update(self.task, **fields)
        if self._jupyter:
            if self._notebook is None:  # no fit ran: the bar once, as it ended
                self._notebook = _NotebookOutput(self.progress)
            self._notebook.close()
        else:
            self.progress.stop()


def _clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _NotebookOutput:
    """The bar as one output of the running notebook cell, redrawn in place.

    rich's own live display needs ipywidgets in a notebook; an IPython display handle
    (always there in a Jupyter kernel) shows the same rendering without it.
    """

    def __init__(self, progress):
        from IPython.display import display

        self.progress = progress
        self.handle = display(progress, display_id=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="distsk-progress")
        self._thread.start()

    def _run(self):
        while not self._stop.wait(NOTEBOOK_REFRESH):
            self.handle.update(self.progress)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.handle.update(self.progress)
