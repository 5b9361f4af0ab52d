"""Comparing a DistributedSearchCV with sklearn's search, key by key."""

import numpy as np
from numpy.testing import assert_array_equal

TIMING_KEYS = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}


def assert_same_cv_results(ours, ref):
    assert set(ours) == set(ref)
    for key in ref:
        if key in TIMING_KEYS:
            continue
        a, b = ours[key], ref[key]
        if isinstance(b, np.ma.MaskedArray):
            assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b), err_msg=key)
            assert list(a.compressed()) == list(b.compressed()), key
        elif key == "params":
            assert a == b
        else:
            assert_array_equal(a, b, err_msg=key)


def assert_same_search(ours, ref):
    assert_same_cv_results(ours.cv_results_, ref.cv_results_)
    for attr in ("best_index_", "best_score_", "best_params_", "n_splits_", "multimetric_"):
        assert (getattr(ours, attr, None) == getattr(ref, attr, None)) or (
            np.isnan(getattr(ours, attr)) and np.isnan(getattr(ref, attr))
        ), attr
    if hasattr(ref, "classes_"):
        assert_array_equal(ours.classes_, ref.classes_)
    assert hasattr(ours, "best_estimator_") == hasattr(ref, "best_estimator_")
