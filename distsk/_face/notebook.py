"""How a fitted distsk estimator shows itself in a notebook: sklearn's diagram, then the plan.

The plan (its headline, the engines compared -- a bar each for the predicted time and
the actual one --, the full reason folded away, and the Dask dashboard when a cluster
ran the fit) is appended to scikit-learn's own HTML diagram; an unfitted estimator
shows the diagram only.
Everything here is read locally (a notebook calls it on every display): no network.
"""

from __future__ import annotations

import html

from sklearn.utils import estimator_html_repr

from .._engines import engine_names

__all__ = ["html_repr_with_plan", "dashboard_link"]


def html_repr_with_plan(estimator) -> str:
    """sklearn's HTML diagram of ``estimator``, followed by its plan once fitted."""
    diagram = estimator_html_repr(estimator)
    plan = estimator.__dict__.get("plan_")
    if plan is None:
        return diagram
    rows = [
        ("plan", html.escape(plan.headline())),
        ("why", "<details><summary>the full reason</summary>"
                f"{html.escape(plan.reason)}</details>"),
    ]
    if plan.predictions:
        rows.insert(1, ("engines", _contenders(plan)))
    address = getattr(plan.compute, "client_address", None)
    if plan.executor in engine_names(needs_cluster=True) and address is not None:
        link = dashboard_link(estimator, address)
        where = f"Dask scheduler {html.escape(address)}"
        if link is not None:
            url = html.escape(link, quote=True)
            where += f', dashboard: <a href="{url}" target="_blank">{html.escape(link)}</a>'
        rows.append(("cluster", where))
    body = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{name}</th>'
        f'<td style="text-align:left">{value}</td></tr>'
        for name, value in rows
    )
    return (
        f'{diagram}<div class="distsk-plan" style="margin-top:0.5em">'
        f"<b>distsk plan</b><table>{body}</table></div>"
    )


def _contenders(plan) -> str:
    """The engines compared, as a table: a bar per engine for its predicted time (and
    one for the actual time of the engine that ran), its peak memory, why excluded."""
    from .._decide.cost_model import _secs
    from .._decide.profile import format_bytes

    times = [t for q in plan.predictions for t in (q.seconds, q.actual_seconds)
             if t is not None]
    longest = max(times, default=0) or 1

    def bar(seconds, colour):
        if seconds is None:
            return ""
        width = max(1, round(120 * seconds / longest))
        return (f'<div style="background:{colour};height:0.6em;width:{width}px;'
                f'display:inline-block;margin-right:0.4em"></div>{_secs(seconds)}')

    cells = ('<th style="text-align:left;padding-right:1em">{}</th>'
             * 4).format("engine", "predicted", "actual", "peak memory")
    body = [f"<tr>{cells}</tr>"]
    for q in plan.predictions:
        name = html.escape(q.engine)
        if q.engine == plan.executor:
            name = f"<b>{name}</b> (chosen)"
        peak = "" if q.peak_bytes is None else format_bytes(q.peak_bytes)
        if peak and q.room_bytes is not None:
            peak += f" of {format_bytes(q.room_bytes)}"
        if not q.fits_memory:
            peak += ": excluded, over the memory there"
        body.append("<tr>" + "".join(
            f'<td style="text-align:left;padding-right:1em">{c}</td>' for c in (
                name, bar(q.seconds, "#8fb8de") if q.seconds is not None else "unknown",
                bar(q.actual_seconds, "#4a8a4a"), html.escape(peak))) + "</tr>")
    return f'<table class="distsk-engines">{"".join(body)}</table>'


def dashboard_link(estimator, address: str) -> str | None:
    """The dashboard URL of the cluster at ``address``, if a client here knows it.

    Read from a client this process already holds (the estimator's own, one distsk
    connected by address, or the default one), never by asking the scheduler.
    """
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import Client, default_client

    from .._cluster.client import _by_address

    candidates = [estimator.__dict__.get("client"), _by_address.get(address)]
    try:
        candidates.append(default_client())
    except ValueError:
        pass
    for client in candidates:
        if not isinstance(client, Client) or client.status != "running":
            continue
        try:
            if client.scheduler.address != address:
                continue
            cluster = client.cluster
            if cluster is not None:  # a cluster object in this process knows its link
                return cluster.dashboard_link
            # The scheduler's identity, as the client cached it when it connected
            # (distributed's own dashboard_link may ask the scheduler again).
            port = client._scheduler_identity["services"]["dashboard"]
        except Exception:  # a repr never fails: no link rather than an error
            continue
        from distributed.utils import format_dashboard_link

        return format_dashboard_link(address.split("://")[-1].rsplit(":", 1)[0], port)
    return None
