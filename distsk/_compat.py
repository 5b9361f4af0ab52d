"""Every private scikit-learn import and version shim, in one place.

When sklearn moves a private helper, this is the only file to change.
"""

from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

__all__ = ["BaseSearchCV", "HasMethods", "Interval", "StrOptions"]

from sklearn.base import _fit_context  # noqa: E402

__all__ += ["_fit_context"]
