"""Units: what travels to where the fits run, and runs there.

A collected ``_fit_and_score`` call (``fit_call``), the units of work made of them
(``sharing``: a batch, a shared pipeline prefix, a shared ensemble), how a unit runs on a
worker (``worker``), the task functions a Dask scheduler unpickles (``remote``) and the
sklearn callback glue (``callbacks``). Imports nothing of distsk but ``_compat``: a
Dask scheduler or a child process imports it without the rest.
"""
