"""Finding or starting a Dask client: the active one, one by address, or an embedded one.

Clients never live on estimators (they would break pickling and clone); connections made
from an address are cached here, per process.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import time

from ..exceptions import ClusterUnavailableError

__all__ = [
    "resolve_client", "embedded_cluster", "inside_worker", "portable_state",
    "clone_sharing_client", "CONNECT_TIMEOUT", "using_client",
]

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 10.0
_by_address: dict[str, object] = {}
_lock = threading.Lock()


def _active_client():
    if "distributed" not in sys.modules:  # no client can exist without the module
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return None
    return client if client.status == "running" else None


def inside_worker() -> bool:
    """True inside a Dask worker task or a loky/joblib worker process."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            get_worker()
            return True
        except ValueError:
            pass
    import multiprocessing

    return multiprocessing.current_process().name != "MainProcess" and (
        "LokyProcess" in type(multiprocessing.current_process()).__name__
    )


def using_client(client):
    """A block in which dask work (gathering, persisting, dask-ml) runs on ``client``,
    even when it is not the default one (nothing changes for None). Thread-safe: it sets
    the task-local current client only (``_compat.client_as_current``)."""
    if client is None:
        return contextlib.nullcontext()
    from .._compat import client_as_current

    return client_as_current(client)


def resolve_client(client, *, timeout: float = CONNECT_TIMEOUT):
    """The client to use for ``client=`` (None, a Client, or an address), or None.

    None means the active default client if there is one; never starts a cluster.
    """
    if client is None:
        return _active_client()
    if isinstance(client, str):
        return _connect(client, timeout)
    from distributed import Client

    if not isinstance(client, Client):
        raise TypeError(
            f"client must be None, a distributed.Client or a scheduler address string; "
            f"got {type(client).__name__}: {client!r}."
        )
    if client.status != "running":
        raise ClusterUnavailableError(
            f"The distributed.Client passed as client= is {client.status!r}, not running. "
            "Pass a connected client, or a scheduler address."
        )
    return client


def _connect(address: str, timeout: float):
    with _lock:
        cached = _by_address.get(address)
        if cached is not None and cached.status == "running":
            return cached
        from distributed import Client

        missing = _missing_tls_credentials(address)
        if missing:
            raise ClusterUnavailableError(missing)
        try:
            _refuses_at_once(address, timeout)
            c = Client(address, timeout=timeout, set_as_default=False)
        except (_Refused, _Silent) as exc:
            # distsk's own probe: the message names the cause; the chained tracebacks
            # (three, 42 lines) added only private frames.
            raise ClusterUnavailableError(_refusal(address, exc, timeout)) from None
        except (OSError, TimeoutError) as exc:  # distributed's Client: its frames may help
            raise ClusterUnavailableError(_refusal(address, exc, timeout)) from exc
        _by_address[address] = c
        return c


_HOW_TO_PASS_CREDENTIALS = (
    "pass client=distributed.Client(address, security=distributed.security.Security("
    "tls_ca_file=..., tls_client_cert=..., tls_client_key=..., require_encryption=True)), "
    "or set the dask config keys distributed.comm.tls.ca-file, "
    "distributed.comm.tls.client.cert and distributed.comm.tls.client.key"
)


def _missing_tls_credentials(address: str) -> str | None:
    """Why a tls:// address cannot be reached with dask's configuration, or None.

    Without client credentials distributed fails with a bare TypeError about an
    ``ssl_context``; say what is missing instead, before any network traffic.
    """
    import dask
    from distributed.comm import parse_address
    from distributed.security import Security

    if parse_address(address)[0] != "tls":
        return None
    if dask.config.get("distributed.client.security-loader", None):
        return None  # the configured loader supplies the credentials; Client calls it
    tls = Security().get_tls_config_for_role("client")
    if tls.get("ca_file") and tls.get("cert"):  # what distributed needs for a TLS context
        return None
    return (
        f"The Dask scheduler at {address!r} requires TLS (tls://), and no TLS client "
        f"credentials (CA file, client certificate and key) are configured, so distsk "
        f"cannot connect to it by address. To connect, {_HOW_TO_PASS_CREDENTIALS}."
    )


def _refuses_at_once(address: str, timeout: float) -> None:
    """Raise for an address that refuses a TCP connection, or accepts it and stays silent.

    distributed retries a refused connection until its timeout (a scheduler may be
    starting); a user who passes an address wants to know at once that nothing listens
    there. A peer that accepts and never speaks makes distributed's Client wait forever
    (2026.8: its ``timeout`` does not cover the handshake): a Dask scheduler sends its
    handshake first on tcp://, so silence for ``timeout`` seconds fails here.
    """
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    scheme, location = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return
    try:
        host, port = parse_host_port(location)
    except ValueError:  # no port given: distributed's own defaults apply
        return
    start = time.monotonic()
    try:
        probe = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        raise _Silent(exc) from exc
    except OSError as exc:  # refused, unreachable, or a name that does not resolve
        raise _Refused(exc) from exc
    with probe:
        if scheme != "tcp":  # tls: the client speaks first, nothing to wait for
            return
        try:
            # Not a Dask message: a TLS scheduler hangs up at it at once (as at the
            # Client's own handshake); a Dask scheduler has sent its handshake anyway.
            probe.sendall(bytes(5))  # shorter than any Dask frame header (8 bytes)
            probe.settimeout(max(0.01, timeout - (time.monotonic() - start)))
            probe.recv(1, socket.MSG_PEEK)
        except TimeoutError as exc:
            raise _Silent(exc) from exc
        except OSError:
            return  # it hung up: the Client's own attempt says why


class _Refused(OSError):
    """A connection refused before any Dask traffic (see ``_refuses_at_once``)."""


class _Silent(TimeoutError):
    """No Dask scheduler answered within the timeout (see ``_refuses_at_once``)."""


def _refusal(address: str, exc: BaseException, timeout: float) -> str:
    from distributed.comm import CommClosedError, parse_address

    if isinstance(exc, _Refused):
        cause = exc.args[0]
        return (
            f"Could not connect to a Dask scheduler at {address!r} "
            f"({type(cause).__name__}: {cause}). Check that `dask scheduler` runs there "
            "and that the address (including the tcp:// or tls:// scheme and port) is right."
        )
    if isinstance(exc, _Silent):
        exc = exc.args[0]
    if not isinstance(exc, CommClosedError):  # nothing answered in time
        return (
            f"Could not connect to a Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). Check that `dask scheduler` runs there and "
            "that the address (including the tcp:// or tls:// scheme and port) is right."
        )
    # Something answered, then closed the connection: say what that usually means.
    what = f"Could not connect to a Dask scheduler at {address!r} ({type(exc).__name__}: {exc})."
    if parse_address(address)[0] == "tls":
        return (
            f"{what} The TLS handshake failed: the scheduler and this client do not accept "
            "each other's certificates. Check that the client's CA file is the one that "
            "signed the cluster's certificates, and that the client certificate is signed "
            "by the CA the cluster trusts."
        )
    # A scheduler started with --tls-cert resets a plain connection at once.
    return (
        f"{what} The scheduler closed the connection as soon as it opened, which is what "
        f"a scheduler that requires TLS does to a client without it. If it was started "
        f"with --tls-ca-file/--tls-cert/--tls-key, use its tls:// address and credentials: "
        f"{_HOW_TO_PASS_CREDENTIALS}."
    )


@contextlib.contextmanager
def embedded_cluster(n_workers: int = 2, threads_per_worker: int = 1, dashboard: bool = False,
                     quiet: bool = False):
    """A LocalCluster of worker processes on 127.0.0.1 and a client to it.

    Listens on loopback only; the dashboard is off unless ``dashboard=True``. ``quiet``
    logs only the cluster's errors (not, e.g., a nanny's warning that it killed a worker
    slow to stop at shutdown).
    """
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(
        silence_logs=logging.ERROR if quiet else logging.WARNING,
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0" if dashboard else None,
        worker_dashboard_address=None,
        # Without a dashboard the scheduler still serves health routes over HTTP; keep
        # them on loopback and on a free port (never the shared default 8787).
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster, Client(cluster, timeout=CONNECT_TIMEOUT) as client:
        yield client


def portable_state(state: dict) -> dict:
    """An estimator's pickled state with a ``client`` Client replaced by its address.

    A Client cannot travel; its address can, and reconnects on the next fit. A new dict:
    on Python >= 3.11 ``object.__getstate__`` returns the estimator's own ``__dict__``.
    """
    state = dict(state)  # callers pop from it (the halving search's engine)
    client = state.get("client")
    if client is not None and not isinstance(client, str):
        state["client"] = str(client.scheduler.address)
    return state


def clone_sharing_client(estimator):
    """sklearn's clone of ``estimator``, whose ``client`` the clone shares if it is a Client.

    sklearn's clone deep-copies the parameters that are not estimators, and a Client cannot
    be copied (it holds its event loop's tasks); clones share it, as they share callbacks.
    """
    from sklearn.base import BaseEstimator

    client = estimator.client
    if client is None or isinstance(client, str):
        return BaseEstimator.__sklearn_clone__(estimator)
    twin = copy.copy(estimator)  # shallow, through __getstate__: the client's address only
    twin.client = None
    return BaseEstimator.__sklearn_clone__(twin).set_params(client=client)
