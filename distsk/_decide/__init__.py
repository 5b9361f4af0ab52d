"""Deciding: the input and the compute profiled (``profile``), costs predicted and
learned (``cost``), a plan chosen (``planning``). Pure: imports no engine."""
