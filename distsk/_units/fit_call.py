"""A collected fit call, read by name: the one place that knows ``_fit_and_score``'s keywords.

sklearn's search hands joblib one ``(func, args, kwargs)`` triple per (candidate, fold):
``func`` is ``_fit_and_score``, ``args`` is ``(estimator, X, y)`` and ``kwargs`` its
keyword arguments (``tests/test_contracts.py`` checks the names read here against the
installed scikit-learn). :class:`FitCall` is that triple with named fields; being a
tuple, it still unpacks and pickles as one. Imports nothing: usable everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["FitCall", "clone_with"]


class FitCall(NamedTuple):
    """One ``_fit_and_score(estimator, X, y, **kwargs)`` call a search collected."""

    func: Callable
    args: tuple
    kwargs: dict

    #: Every keyword of ``_fit_and_score`` read through this class (sklearn 1.6+), and
    #: those of sklearn's callbacks (1.9+). ``tests/test_contracts.py`` checks them.
    KEYWORDS = frozenset({
        "parameters", "train", "test", "scorer", "fit_params", "score_params",
        "split_progress", "error_score", "verbose", "return_train_score",
        "return_n_test_samples", "return_times", "return_parameters",
    })
    CALLBACK_KEYWORDS = frozenset({"callback_ctx", "caller"})

    @classmethod
    def of(cls, item) -> FitCall:
        """``item`` (a joblib ``(func, args, kwargs)`` triple) as a FitCall."""
        return item if isinstance(item, cls) else cls(*item)

    # The positional arguments.
    @property
    def estimator(self) -> Any:
        """The search's unfitted estimator (the candidate's parameters not yet set)."""
        return self.args[0]

    @property
    def X(self) -> Any:  # noqa: N802 (sklearn's name)
        return self.args[1]

    @property
    def y(self) -> Any:
        return self.args[2]

    # The keywords, as sklearn passed them (None when absent).
    @property
    def parameters(self) -> dict | None:
        """The candidate's parameters as passed (None or a dict)."""
        return self.kwargs.get("parameters")

    @property
    def candidate_params(self) -> dict:
        """The candidate's parameters, ``{}`` when there are none."""
        return self.kwargs.get("parameters") or {}

    @property
    def train(self) -> Any:
        return self.kwargs.get("train")

    @property
    def test(self) -> Any:
        return self.kwargs.get("test")

    @property
    def scorer(self) -> Any:
        return self.kwargs.get("scorer")

    @property
    def fit_params(self) -> dict | None:
        return self.kwargs.get("fit_params")

    @property
    def score_params(self) -> dict | None:
        return self.kwargs.get("score_params")

    @property
    def split_progress(self) -> tuple | None:
        """``(fold index, number of folds)``."""
        return self.kwargs.get("split_progress")

    @property
    def error_score(self) -> Any:
        return self.kwargs.get("error_score")

    @property
    def verbose(self) -> int:
        return self.kwargs.get("verbose") or 0

    @property
    def callback_ctx(self) -> Any:
        """sklearn's callback context of this fit (sklearn 1.9+), or None."""
        return self.kwargs.get("callback_ctx")

    @property
    def caller(self) -> Any:
        """The search itself, passed to callback hooks (sklearn 1.9+), or None."""
        return self.kwargs.get("caller")

    @property
    def has_fold_keywords(self) -> bool:
        """Whether the call has the shape sklearn's searches give (candidate, fold and
        training rows named): the condition for sharing work between calls."""
        return all(k in self.kwargs for k in ("parameters", "split_progress", "train"))

    def wants(self, name: str) -> bool:
        """Whether a ``return_<name>`` keyword asks for that part of the result."""
        return bool(self.kwargs.get(f"return_{name}"))

    def run(self, estimator=None) -> dict:
        """Make the call, on ``estimator`` instead of the collected one if given."""
        args = self.args if estimator is None else (estimator, *self.args[1:])
        return self.func(*args, **self.kwargs)

    def calling(self, func: Callable, **changes) -> FitCall:
        """``func`` on the same arguments (keywords ``changes`` replaced), run under the
        scikit-learn configuration and warning filters that sklearn's ``Parallel``
        captured for this call: its ``delayed`` wrapper sets them where the call runs
        (a worker's own configuration is the default one)."""
        return FitCall(self._configured(func), self.args, {**self.kwargs, **changes})

    def in_callers_context(self, func: Callable, *args, **kwargs):
        """``func(*args, **kwargs)`` under this call's scikit-learn configuration and
        warning filters (work a unit shares between its calls: a pipeline prefix, a
        large ensemble)."""
        return self._configured(func)(*args, **kwargs)

    def _configured(self, func: Callable) -> Callable:
        wrapper = self.func
        if hasattr(wrapper, "config"):  # sklearn's _FuncWrapper
            from .._compat import with_callers_settings

            return with_callers_settings(func, wrapper.config,
                                         getattr(wrapper, "warning_filters", None))
        return func

    def with_keywords(self, **changes) -> FitCall:
        """The same call with some keywords replaced."""
        return FitCall(self.func, self.args, {**self.kwargs, **changes})


def clone_with(estimator, parameters: dict):
    """A fresh clone of ``estimator`` with ``parameters`` set, as sklearn's searches make
    a candidate (``clone(estimator).set_params(**clone(parameters, safe=False))``)."""
    from sklearn.base import clone

    return clone(estimator).set_params(**clone(parameters, safe=False))
