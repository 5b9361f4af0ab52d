"""sklearn fit-callback glue shared by the search engine and the runners.

A neutral module (it imports nothing from distsk), so the runners in ``_executors``
can use it without importing the search engine above them.
"""

from __future__ import annotations

__all__ = ["replay_callbacks"]


def replay_callbacks(item, resumed=False):
    """A fit that did not run here still begins and ends for sklearn's callbacks.

    So a ProgressBar completes. Fits resumed from a checkpoint say so in the hooks'
    ``metadata`` (``{"distsk_resumed": True}``), for callbacks that count them apart.
    """
    _, _, kwargs = item
    ctx = kwargs.get("callback_ctx")
    if ctx is not None:
        metadata = {"distsk_resumed": True} if resumed else None
        ctx.call_on_fit_task_begin(estimator=kwargs.get("caller"), metadata=metadata)
        ctx.call_on_fit_task_end(estimator=kwargs.get("caller"), metadata=metadata)
