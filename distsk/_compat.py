"""Every private scikit-learn import and version shim, in one place.

When sklearn moves a private helper, this is the only file to change.
"""

from sklearn.base import _fit_context
from sklearn.metrics._scorer import _MultimetricScorer, _PassthroughScorer, _Scorer
from sklearn.model_selection._search import BaseSearchCV, _search_estimator_has
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import _safe_split

try:  # sklearn >= 1.9: fit callbacks, whose worker events travel over this transport
    from sklearn.callback import _transport as callback_transport
except ImportError:  # pragma: no cover - older sklearn has no callbacks to forward
    callback_transport = None

__all__ = [
    "BaseSearchCV",
    "HasMethods",
    "Interval",
    "StrOptions",
    "_MultimetricScorer",
    "_PassthroughScorer",
    "_Scorer",
    "_fit_context",
    "_safe_split",
    "_search_estimator_has",
    "callback_transport",
]
