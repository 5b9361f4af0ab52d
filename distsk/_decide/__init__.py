"""Deciding: the input and the compute profiled (``profile``), what each engine can do
(``specs``, with the rules behind it: ``dask_ml_rules``, ``xgboost_rules``), costs
predicted (``cost_model``, ``cost_large``), measured (``probe``) and learned
(``learned``), a plan chosen (``planning``, ``planning_large``; the ``Plan`` in ``plan``).
Pure: imports no engine."""
