"""A fit that kills its process: tried alone in a child process, then convicted.

A fit whose worker died every time it ran there (killed by the out-of-memory killer, a
segfault in native code, ``os._exit``) is tried once more alone in a child process of
its own (``_worker.run_in_child``): if the child dies, that fit did it (the worker lives
and says so); if it finishes, the fit was only a bystander of another fit's crash, and
its result is kept. The same runs on this machine for loky: a fit that kills its loky
worker breaks the whole pool, and every unit that was running is retried this way.

This module is the caller's side: how many times, and the result a convicted fit gets.
"""

from __future__ import annotations

from .._units.callbacks import replay_callbacks
from .._units.fit_call import FitCall
from .._units.worker import UnitResult

__all__ = ["KILLED_CONFIRMATIONS", "convicted"]

#: Extra runs, alone in a child process, of a fit whose child died, before it is convicted.
KILLED_CONFIRMATIONS = 1


def convicted(item, died):
    """The outcome of a fit whose process died every time, alone too: its error_score
    (as a failed ``_fit_and_score`` result), or a RuntimeError with error_score="raise"."""
    message = (
        f"The process running this fit died every time it ran it, also alone in a "
        f"process of its own ({died}); for example the out-of-memory killer. The fit "
        "was not tried again."
    )
    if FitCall.of(item).error_score == "raise":
        raise RuntimeError(message)
    replay_callbacks(item)  # it began and ended, for a progress bar
    return UnitResult([_killed_result(item, message)], 1)


def _killed_result(item, message) -> dict:
    """The result ``_fit_and_score`` gives a failed fit, for a fit that kills its process."""
    from .._compat import _MultimetricScorer

    call = FitCall.of(item)
    error_score = call.error_score
    scorer = call.scorer
    if isinstance(scorer, _MultimetricScorer):
        scores = {name: error_score for name in scorer._scorers}
    else:
        scores = error_score
    result = {"fit_error": message, "test_scores": scores}
    if call.wants("train_score"):
        result["train_scores"] = scores.copy() if isinstance(scores, dict) else scores
    if call.wants("n_test_samples"):
        result["n_test_samples"] = len(call.test)
    if call.wants("times"):
        result["fit_time"] = result["score_time"] = 0.0
    if call.wants("parameters"):
        result["parameters"] = call.parameters
    return result


