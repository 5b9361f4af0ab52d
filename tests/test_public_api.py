"""The public surface is exactly what __all__ says."""

import distsk


def test_public_names_are_exactly_all():
    public = {n for n in dir(distsk) if not n.startswith("_")}
    assert set(distsk.__all__) - {"__version__"} == public - {
        "exceptions", "cli",
    }


def test_all_is_sorted_and_importable():
    assert list(distsk.__all__) == sorted(distsk.__all__)
    for name in distsk.__all__:
        assert getattr(distsk, name) is not None


def test_backends_listed():
    assert distsk.BACKENDS == ("sequential", "loky", "dask", "dask-ml", "xgboost",
                               "xgboost-external-memory")


def test_halving_searches_are_sklearns_classes():
    from sklearn.model_selection._search_successive_halving import (
        HalvingGridSearchCV,
        HalvingRandomSearchCV,
    )

    assert issubclass(distsk.DistributedHalvingGridSearchCV, HalvingGridSearchCV)
    assert issubclass(distsk.DistributedHalvingRandomSearchCV, HalvingRandomSearchCV)
