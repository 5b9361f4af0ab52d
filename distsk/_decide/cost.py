"""The names the public face imports from here today, where they live now.

The cost model is three modules: ``cost_model`` (pure predictions from a ``Costs``
snapshot), ``probe`` (the instruments timing a probe fit) and ``learned`` (what this
process has learned: ``LearnedCosts``, its process default ``learned_costs()``).
``MODEL`` is that default, followed through a proxy. Nothing in distsk/_decide imports
this module; it goes once ``_face`` and ``_search/driver.py`` import from the three.
"""

from __future__ import annotations

from .cost_large import LargeWork
from .cost_model import Costs, Prediction, cheapest, fit_work_key
from .learned import MODEL, WRONG_BY, WRONG_BY_SECONDS, LearnedCosts, learned_costs
from .probe import PROBE_ERROR, PROBE_SUBSAMPLE, plan_from_subsample, subsample, timed_probe

__all__ = [
    "MODEL", "LearnedCosts", "learned_costs", "Costs", "Prediction", "LargeWork", "cheapest",
    "fit_work_key", "WRONG_BY", "WRONG_BY_SECONDS", "PROBE_SUBSAMPLE", "PROBE_ERROR",
    "plan_from_subsample", "subsample", "timed_probe",
]
