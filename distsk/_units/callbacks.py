"""sklearn fit-callback glue: everything distsk knows about sklearn's callback contexts.

Used by the search engine (which fits report to callbacks, what travels with a unit)
and by the runners (fits that did not run still begin and end). A neutral module (it
imports nothing from distsk), so the runners in ``_engines`` can use it without
importing the search engine above them. The worker side of callback events (forwarded
as Dask events from a worker, kept by a child process) is in ``_worker``.
"""

from __future__ import annotations

from .fit_call import FitCall

__all__ = ["replay_callbacks", "has_callbacks", "portable", "shows_progress"]


def replay_callbacks(item, resumed=False):
    """A fit that did not run here still begins and ends for sklearn's callbacks.

    So a ProgressBar completes. Fits resumed from a checkpoint say so in the hooks'
    ``metadata`` (``{"distsk_resumed": True}``), for callbacks that count them apart.
    """
    call = FitCall.of(item)
    ctx = call.callback_ctx
    if ctx is not None:
        metadata = {"distsk_resumed": True} if resumed else None
        ctx.call_on_fit_task_begin(estimator=call.caller, metadata=metadata)
        ctx.call_on_fit_task_end(estimator=call.caller, metadata=metadata)


def has_callbacks(items, copies_ok=False) -> bool:
    """Whether any fit reports to sklearn callbacks (a copy would report twice).
    ``copies_ok``: leave out callbacks that count a fit reported twice once (those
    with ``distsk_copies_ok = True``: distsk's progress bar)."""
    for item in items:
        ctx = FitCall.of(item).callback_ctx
        callbacks = getattr(ctx, "_callbacks", None) if ctx is not None else None
        if callbacks and not (copies_ok and all(
                getattr(cb, "distsk_copies_ok", False) for cb in callbacks)):
            return True
    return False


def portable(items):
    """``items`` with each callback context cut down to its own path from the root.

    sklearn's contexts link to their parent, and the parent to every child: pickling
    one fit's context would send the whole search's tree (every fit's context) with
    each batch -- and the Dask scheduler, which unpickles task specs, kept ~50 MB per
    4,000-fit search. Callbacks only walk up from a context (``get_context_path``),
    so a copy of the path is enough.
    """
    import copy

    copies: dict[int, object] = {}

    def detached(ctx):
        if ctx is None:
            return None
        if id(ctx) not in copies:
            new = copy.copy(ctx)
            new._children_map = {}
            new.parent = detached(ctx.parent)
            copies[id(ctx)] = new
        return copies[id(ctx)]

    def bare(caller):
        # The search itself (``caller``, passed to the callbacks' hooks) holds the root
        # of that tree during fit: its copy travels without it.
        if "_callback_fit_ctx" not in getattr(caller, "__dict__", {}):
            return caller
        if id(caller) not in copies:
            new = copy.copy(caller)
            del new.__dict__["_callback_fit_ctx"]
            copies[id(caller)] = new
        return copies[id(caller)]

    out = []
    bare_ctx = None
    for item in items:
        call = FitCall.of(item)
        ctx = call.callback_ctx
        if ctx is not None and not getattr(ctx, "_callbacks", True) and not (
            call.args and getattr(call.estimator, "_skl_callbacks", None)
        ):
            # No callback anywhere: sklearn's hooks do nothing. The fit still gets a
            # context -- the same path through _fit_and_score, so a failed fit's
            # traceback in FitFailedWarning is sklearn's line for line -- but one bare
            # context for the batch, and no caller: each fit's context with its path
            # and the search itself were ~200 us of pickling per fit, most of the
            # client's work on many slots.
            if bare_ctx is None:
                bare_ctx = _bare(ctx)
            out.append(call.with_keywords(callback_ctx=bare_ctx, caller=None))
            continue
        if ctx is not None or call.caller is not None:
            call = call.with_keywords(callback_ctx=detached(ctx), caller=bare(call.caller))
        out.append(call)
    return out


def _bare(ctx):
    """A leaf context and its parent (an estimator that supports callbacks merges its
    own context into the leaf's parent), without the rest of the tree."""
    import copy

    bare = copy.copy(ctx)
    bare._children_map = {}
    if ctx.parent is not None:
        bare.parent = copy.copy(ctx.parent)
        bare.parent._children_map = {}
        bare.parent.parent = None
    return bare


def shows_progress(items) -> bool:
    """Whether sklearn's ProgressBar is among the search's callbacks."""
    ctx = FitCall.of(items[0]).callback_ctx if items else None
    return any(type(cb).__name__ == "ProgressBar" for cb in getattr(ctx, "_callbacks", ()))
