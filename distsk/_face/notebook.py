"""How a fitted distsk estimator shows itself in a notebook: sklearn's diagram, then the plan.

The plan (engine, strategy, reason, and the Dask dashboard when a cluster ran the fit) is
appended to scikit-learn's own HTML diagram; an unfitted estimator shows the diagram only.
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
        ("engine", f"<code>{html.escape(plan.executor)}</code> ({html.escape(plan.strategy)})"),
        ("why", html.escape(plan.reason)),
    ]
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
