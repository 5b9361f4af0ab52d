"""Every private name distsk imports from scikit-learn and joblib, in one place.

When an upstream release moves a private helper, this is the only file to change, and
``tests/test_contracts.py`` is where the change shows: it asserts each assumption made
about these names (and about internals reached through attributes: ``BatchedCalls.items``,
``Pipeline._fit``, ``_fit_and_score``'s keywords and failure result, loky's executor,
distributed's scheduler info). Each name below says why distsk needs it and since which
release it exists (the floors in ``pyproject.toml`` must be at or above these).
"""

import contextlib
import sys

# --------------------------------------------------------------------------- scikit-learn
# ``fit`` validates parameters once and skips nested validation of the inner estimator,
# as sklearn's meta-estimators do. sklearn.base, since 1.3.
from sklearn.base import _fit_context

# Scorer classes: a search's (candidate, fold) fits are shared (pipeline prefixes,
# ensemble sizes) only when every scorer is one of sklearn's, which only call response
# methods; ``_MultimetricScorer._scorers`` lists the scorers of a multimetric search.
# sklearn.metrics._scorer; ``_Scorer`` since 1.4, the others earlier.
from sklearn.metrics._scorer import _MultimetricScorer, _PassthroughScorer, _Scorer

# DistributedSearchCV is sklearn's own search: it subclasses BaseSearchCV and fills in
# ``_run_search``; ``_search_estimator_has`` makes its delegated methods exist exactly
# when GridSearchCV's do. sklearn.model_selection._search, both since 1.0 or earlier.
from sklearn.model_selection._search import BaseSearchCV, _search_estimator_has

# The halving searches, from their module: importing them through
# sklearn.experimental.enable_halving_search_cv would also publish them in
# sklearn.model_selection for the user's whole process (sklearn 1.9). Experimental
# since 0.24.
from sklearn.model_selection._search_successive_halving import (
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
)

# The (candidate, fold) fit of a search: the halving searches call it themselves to
# keep a round's models for the next. sklearn.model_selection._validation, long before
# the 1.6 floor (keywords and failure result asserted in tests/test_contracts.py).
from sklearn.model_selection._validation import _fit_and_score

# Rows of any array-like (arrays, frames, sparse) by index, as sklearn's splitters take
# them: the halving searches' probe fits on a first round's rows. sklearn.utils, since
# 0.24 or earlier.
from sklearn.utils import _safe_indexing

# Validation of the meta-estimators' parameters, as sklearn's estimators do it
# (``_parameter_constraints``). sklearn.utils._param_validation, since 1.2.
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

# Whether metadata routing is on (``sklearn.set_config(enable_metadata_routing=True)``):
# decides whether fit/predict parameters are routed or passed through.
# sklearn.utils.metadata_routing, since 1.3.
from sklearn.utils.metadata_routing import _routing_enabled

# The training split of one fold, exactly as ``_fit_and_score`` makes it (pairwise
# estimators included), for the shared prefix and ensemble fits. Since 0.24 or earlier.
from sklearn.utils.metaestimators import _safe_split

# The wrapper sklearn's Parallel puts around each call to carry the caller's config (and,
# since sklearn 1.7, warning filters) to where it runs: distsk wraps the fits it sends
# itself in it, through ``with_callers_settings``. sklearn.utils.parallel, since 1.2.1
# (asserted in tests/test_contracts.py).
from sklearn.utils.parallel import _FuncWrapper

# The number of samples of any array-like (lists, frames, sparse), as sklearn counts
# them: the halving searches' resource hint. sklearn.utils.validation, long before the
# 1.6 floor.
from sklearn.utils.validation import _num_samples

try:
    # sklearn's fit callbacks (ProgressBar, ...) send events from worker processes to a
    # listener in the caller over this transport; distsk forwards them from Dask workers
    # and from child processes (``send``, ``ListenerHandle``, ``_message_consumers``).
    # sklearn.callback._transport, since 1.9.
    from sklearn.callback import _transport as callback_transport
except ImportError:  # sklearn < 1.9 has no callbacks to forward
    callback_transport = None

# --------------------------------------------------------------------------------- joblib
try:
    # The search's collector is a joblib backend. Public as joblib.ParallelBackendBase
    # since joblib 1.5 (whose backend API, ``submit``, the collector implements).
    from joblib import ParallelBackendBase
except ImportError:  # pragma: no cover - joblib < 1.5
    from joblib._parallel_backends import ParallelBackendBase

# The collector's nested backend (fits inside a collected call run their own joblib
# loops sequentially), and the loky backend whose worker environment (thread limits)
# the loky search runner reuses (``_prepare_worker_env``). joblib._parallel_backends,
# since 0.12.
# The "distsk" joblib backend (``_joblib_backend``) hands each Parallel call a fresh
# backend of its own by raising ``FallbackToBackend`` from ``configure`` (joblib then
# configures that one instead), and runs work written for threads (a forest's per-tree
# jobs) on joblib's ``ThreadingBackend``. joblib._parallel_backends, since 0.12.
from joblib._parallel_backends import (
    FallbackToBackend,
    LokyBackend,
    SequentialBackend,
    ThreadingBackend,
)

# joblib's shared, reusable loky executor with memory-mapping of large arrays: the loky
# search runner submits its units there, so sklearn's own n_jobs and distsk share one
# warm pool. joblib.executor (not a documented API), since 0.12.
from joblib.executor import get_memmapping_executor

# ------------------------------------------------------------ scikit-learn releases
# distsk runs on scikit-learn 1.6 and later (pyproject.toml claims 1.9.0 until #25 s1's
# last failure at 1.6.1 is fixed); what differs between releases is decided here, by
# what the installed release has.

#: Whether the installed scikit-learn has fit callbacks (``sklearn.callback``, 1.9+):
#: ``set_callbacks`` on the searches and distsk's progress bar (``verbose >= 1``) need
#: them. On older releases the searches run without, as sklearn's own do there.
HAS_CALLBACKS = callback_transport is not None

#: What a feature built on sklearn's callbacks needs, as errors and test skips say it.
CALLBACKS_NEED = "scikit-learn >= 1.9 (sklearn.callback)"


if HAS_CALLBACKS:

    class CallbacksNeedSklearn19:
        """Nothing on scikit-learn >= 1.9: the searches have sklearn's ``set_callbacks``."""

else:

    class CallbacksNeedSklearn19:
        """On scikit-learn < 1.9, a search's ``set_callbacks`` says which release it needs.

        It is still missing, as on sklearn's own searches there (``hasattr`` is False, an
        AttributeError), but the error names the release to install.
        """

        @property
        def set_callbacks(self):
            import sklearn

            raise AttributeError(
                f"{type(self).__name__}.set_callbacks needs {CALLBACKS_NEED}; "
                f"scikit-learn {sklearn.__version__} is installed "
                "(pip install 'scikit-learn>=1.9')."
            )


if hasattr(BaseSearchCV, "_html_repr"):

    class HTMLReprHook:
        """Nothing on scikit-learn >= 1.7, whose estimators draw their notebook HTML with
        ``self._html_repr()`` (``sklearn.utils._repr_html.base.ReprHTMLMixin``)."""

else:

    class HTMLReprHook:
        """sklearn 1.7's notebook HTML hook on older releases: ``_repr_html_`` and
        ``_repr_mimebundle_`` draw ``self._html_repr()`` (the plan after the diagram,
        ``distsk._face.notebook``), where sklearn 1.6 called ``estimator_html_repr``."""

        def _repr_html_inner(self):
            return self._html_repr()

        def _repr_mimebundle_(self, **kwargs):
            from sklearn import get_config

            output = {"text/plain": repr(self)}
            if get_config()["display"] == "diagram":
                output["text/html"] = self._html_repr()
            return output


def with_callers_settings(func, config: dict, warning_filters=None):
    """``func`` wrapped as sklearn's ``Parallel`` wraps a call (``_FuncWrapper``): run
    under ``config`` and, unless ``warning_filters`` is None, under those filters.

    sklearn 1.7 added the filters to ``_FuncWrapper`` (``with_config_and_warning_filters``);
    on 1.6 it carries the configuration only, and the filters are set around it here.
    (A search's own fits on 1.6 come from sklearn's ``Parallel`` without filters, and
    travel so: ``FitCall.calling``.)
    """
    wrapper = _FuncWrapper(func)
    if hasattr(wrapper, "with_config_and_warning_filters"):
        return wrapper.with_config_and_warning_filters(config, list(warning_filters or []))
    wrapper = wrapper.with_config(config)
    return wrapper if warning_filters is None else _UnderWarningFilters(wrapper,
                                                                     warning_filters)


class _UnderWarningFilters:
    """A call run under given warning filters (sklearn < 1.7: ``with_callers_settings``)."""

    def __init__(self, func, warning_filters):
        self.func = func
        self.warning_filters = list(warning_filters)

    def __call__(self, *args, **kwargs):
        import warnings

        with warnings.catch_warnings():
            # As sklearn 1.7's _FuncWrapper sets them: each (action, message, category,
            # module, lineno) filter appended, message and module patterns as strings.
            warnings.resetwarnings()
            for action, message, category, module, lineno in self.warning_filters:
                if message is None and module is None:
                    warnings.simplefilter(action, category, lineno, append=True)
                else:
                    warnings.filterwarnings(
                        action, getattr(message, "pattern", message) or "", category,
                        getattr(module, "pattern", module) or "", lineno, append=True)
            return self.func(*args, **kwargs)


def loky_workers() -> int:
    """Live processes of joblib's reusable loky pool (0 when none is running).

    The cost model of ``backend="auto"`` counts a warm pool as free to use and a cold one
    as its start-up time. Reads ``joblib.externals.loky.reusable_executor._executor``, the
    pool ``get_reusable_executor`` keeps (not a documented API; loky >= 2.0, joblib 0.12).
    """
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is None or executor._flags.broken or executor._flags.shutdown:
        return 0
    return len(getattr(executor, "_processes", None) or ())


# ------------------------------------------------------------------------- distributed
@contextlib.contextmanager
def client_as_current(client):
    """``client`` as the one dask computes on in this block: ``Client.as_current``
    without its ``dask.config.set(scheduler="dask.distributed")``.

    That set is process-wide and restored on exit to what it was on entry, so blocks
    of two threads that overlap without nesting (A enters, B enters, A exits, B exits)
    leave ``scheduler="dask.distributed"`` set for the process: found after 20
    concurrent searches from threads of one client, when the next dask computation
    without a client raised "Requested dask.distributed scheduler but no Client
    active". The task-local current client alone (``distributed.client._current_client``,
    the context variable ``as_current`` sets; distributed >= 2023.x) is what dask's
    ``get_scheduler`` finds when no scheduler is configured. With one configured
    other than distributed, ``as_current`` itself (which overrides it) is used.
    """
    import dask
    from distributed.client import _current_client

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        with client.as_current():
            yield
        return
    token = _current_client.set(client)
    try:
        yield
    finally:
        _current_client.reset(token)


# ---------------------------------------------------------------------------- dask-glm
def dask_glm_lbfgs_without_iprint() -> None:
    """Let dask-glm's L-BFGS run on scipy >= 1.18 (called before each dask-ml fit).

    dask-glm 0.4.0, its latest release, passes ``iprint`` to scipy's ``fmin_l_bfgs_b``,
    which scipy deprecated in 1.15 and removed in 1.18: there every dask-ml lbfgs fit
    (LogisticRegression, LinearRegression, PoissonRegression) raises TypeError. dask-glm
    looks the function up in its module at each call, so that name is given a wrapper that
    drops ``iprint`` (it only sets scipy's printing). Nothing changes where scipy still
    takes ``iprint``; calling again is a no-op.
    """
    import functools
    import inspect

    from dask_glm import algorithms

    target = algorithms.fmin_l_bfgs_b
    if getattr(target, "_distsk_drops_iprint", False):
        return
    if "iprint" in inspect.signature(target).parameters:
        return

    @functools.wraps(target)
    def without_iprint(*args, iprint=None, **kwargs):
        return target(*args, **kwargs)

    without_iprint._distsk_drops_iprint = True
    algorithms.fmin_l_bfgs_b = without_iprint


# ------------------------------------------------------------------------------ mlflow
def mlflow_sklearn_patch(method: str):
    """The patch function ``mlflow.sklearn.autolog()`` applied to ``GridSearchCV.<method>``
    (``fit``, ``score``), or None when sklearn autologging is off (MLflow not imported,
    never enabled, or disabled: its patches are reverted).

    distsk's searches are logged by these very functions (``distsk._face.mlflow_autolog``):
    MLflow keeps them only in the closure of the wrapper it sets on the class
    (``mlflow.utils.autologging_utils.safety.safe_patch``: free variables
    ``patch_function``, e.g. the run-managing wrapper of ``mlflow.sklearn``'s
    ``patched_fit``, and ``autologging_integration``); MLflow 3.18.0 tested, asserted in
    tests/test_mlflow.py. Reads nothing unless MLflow is imported.
    """
    if "mlflow" not in sys.modules:
        return None
    from sklearn.model_selection import GridSearchCV

    wrapper = GridSearchCV.__dict__.get(method)
    code, closure = getattr(wrapper, "__code__", None), getattr(wrapper, "__closure__", None)
    if code is None or not closure:
        return None
    cells = dict(zip(code.co_freevars, closure, strict=False))
    try:
        if cells["autologging_integration"].cell_contents != "sklearn":
            return None
        return cells["patch_function"].cell_contents
    except (KeyError, ValueError):  # another wrapper, or an empty cell
        return None


def mlflow_safe_patch(destination, name: str, patch_function) -> None:
    """``destination.name`` wrapped in ``patch_function`` as MLflow's sklearn autologging
    wraps a class's method (its error handling, session and configuration), and reverted
    with that integration's patches. ``mlflow.utils.autologging_utils.safe_patch`` (not a
    documented API; MLflow 3.18.0 tested)."""
    from mlflow.utils.autologging_utils import safe_patch

    safe_patch("sklearn", destination, name, patch_function)


__all__ = [
    "BaseSearchCV",
    "CALLBACKS_NEED",
    "CallbacksNeedSklearn19",
    "FallbackToBackend",
    "HAS_CALLBACKS",
    "HTMLReprHook",
    "HalvingGridSearchCV",
    "HalvingRandomSearchCV",
    "HasMethods",
    "Interval",
    "LokyBackend",
    "ParallelBackendBase",
    "SequentialBackend",
    "StrOptions",
    "ThreadingBackend",
    "_FuncWrapper",
    "_MultimetricScorer",
    "_num_samples",
    "_PassthroughScorer",
    "_Scorer",
    "_fit_and_score",
    "_fit_context",
    "_routing_enabled",
    "_safe_indexing",
    "_safe_split",
    "_search_estimator_has",
    "callback_transport",
    "client_as_current",
    "dask_glm_lbfgs_without_iprint",
    "get_memmapping_executor",
    "loky_workers",
    "mlflow_safe_patch",
    "mlflow_sklearn_patch",
    "with_callers_settings",
]
