"""MLflow's sklearn autologging for distsk's searches: the runs sklearn's search logs.

``mlflow.sklearn.autolog()`` patches ``fit`` of the classes sklearn lists, GridSearchCV
and RandomizedSearchCV among them but no distsk class: a search would log no run of its
own, while each fit it made in this process (the probe, in-process candidates, the
refit) logged one. Here a search's ``fit`` goes through MLflow's own patch instead (the
code MLflow puts on ``GridSearchCV.fit``: run, parameters, metrics, model, one child run
per candidate, and the guard that keeps nested fits from logging), with the search seen
as the sklearn class it replaces.
"""

from __future__ import annotations

import copyreg
import functools
import threading
import types

from .._compat import (
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    mlflow_safe_patch,
    mlflow_sklearn_patch,
)

__all__ = ["logged_by_mlflow"]


def logged_by_mlflow(fit):
    """``fit`` of a search, logged by MLflow's sklearn autologging when that is on.

    Off (MLflow not imported, or ``autolog`` not called or disabled), ``fit`` is called
    as it is. On, the search is an instance of a subclass of its own class and of the
    sklearn class it replaces (:func:`_logged_class`) while MLflow's patch runs: MLflow
    decides what a search is by ``isinstance`` (GridSearchCV and RandomizedSearchCV get a
    child run per candidate) and names the class in the run's tags from
    ``type(search)``, which keeps the search's own name and module. ``fit`` itself runs
    with the search's own class, inside MLflow's training session, so no fit made during
    it logs a run. ``score`` of the search's class gets MLflow's patch of
    ``GridSearchCV.score`` (post-training metrics); ``predict`` and the other methods
    reach ``BaseSearchCV``'s, which MLflow patches for every search class.
    """

    @functools.wraps(fit)
    def fit_logged(search, X, y=None, **params):
        patch = mlflow_sklearn_patch("fit")
        if patch is None:
            return fit(search, X, y, **params)
        own = type(search)
        _patch_score(own)
        logged = _logged_class(own, _replaced(search), fit, patch)
        search.__class__ = logged
        try:
            return logged.fit(search, X, y, **params)
        finally:
            search.__class__ = own

    return fit_logged


def _replaced(search) -> type | None:
    """The sklearn search class ``search`` stands for, when it is not an instance of it
    already (the halving searches are)."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    if isinstance(search, (HalvingGridSearchCV, HalvingRandomSearchCV)):
        return None
    return GridSearchCV if search.param_grid is not None else RandomizedSearchCV


def _patch_score(own: type) -> None:
    """``own.score`` patched as MLflow patches ``GridSearchCV.score`` (once per ``autolog``;
    reverted with MLflow's own patches)."""
    patch = mlflow_sklearn_patch("score")
    with _LOCK:
        if patch is None or _SCORED.get(own) is patch:
            return
        mlflow_safe_patch(own, "score", patch)
        _SCORED[own] = patch


# One class per (search class, sklearn class, fit), remade when ``autolog`` is called
# again (MLflow then makes a new patch and reverts the old ones, this module's too).
_LOGGED: dict = {}
_SCORED: dict = {}  # search class: the score patch applied to it
_LOCK = threading.Lock()


def _logged_class(own: type, replaced: type | None, fit, patch) -> type:
    """``own`` as ``replaced`` too, its ``fit`` (``fit`` run as ``own``) patched by MLflow."""
    key = (own, replaced, fit)
    with _LOCK:
        made = _LOGGED.get(key)
        if made is not None and made[0] is patch:
            return made[1]

        def fit_as_own(self, X, y=None, **params):
            self.__class__ = own
            try:
                return fit(self, X, y, **params)
            finally:
                self.__class__ = logged

        def __reduce_ex__(self, protocol):
            # The model MLflow pickles during fit is the search of its own class.
            self.__class__ = own
            try:
                func, *rest = self.__reduce_ex__(protocol)
            finally:
                self.__class__ = logged
            return (_new if func is copyreg.__newobj__ else func, *rest)

        namespace = {
            "__module__": own.__module__, "__qualname__": own.__qualname__,
            "__doc__": own.__doc__, "fit": fit_as_own, "__reduce_ex__": __reduce_ex__,
        }
        bases = (own,) if replaced is None else (own, replaced)
        logged = types.new_class(own.__name__, bases, exec_body=lambda ns: ns.update(namespace))
        mlflow_safe_patch(logged, "fit", patch)
        _LOGGED[key] = (patch, logged)
        return logged


def _new(cls, *args):
    """``copyreg.__newobj__`` by another name: pickle refuses ``__newobj__`` for an object
    whose class is not ``cls``, and the search is of its logged class while pickled."""
    return cls.__new__(cls, *args)
