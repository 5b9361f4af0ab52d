"""Sphinx configuration for the distsk documentation.

Build from the repository root with::

    sphinx-build -W -b html docs docs/_build/html
"""

import json
from pathlib import Path

import distsk

project = "distsk"
author = "The distsk developers"
copyright = "The distsk developers"
version = distsk.__version__
release = distsk.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

# The API pages are generated from the docstrings at build time (docs/api/generated is
# gitignored).
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
templates_path = ["_templates"]

# numpydoc lists the documented methods through autosummary's class template instead.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# No intersphinx: the build must not need network access.

exclude_patterns = ["_build", "examples/__pycache__"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

html_theme = "pydata_sphinx_theme"
html_title = f"distsk {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []


# The date and machine of the benchmark figures shown in why_faster.rst, read from the
# run that wrote benchmarks/results/ (so the page never states numbers of its own).
def _benchmark_facts() -> tuple[str, str]:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "environment.json"
    try:
        env = json.loads(path.read_text())
        return str(env["started"])[:10], f"a {int(env['local_cores'])}-core machine"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unrecorded date", "an unrecorded machine"


_bench_date, _bench_machine = _benchmark_facts()
rst_epilog = f"""
.. |bench_date| replace:: {_bench_date}
.. |bench_machine| replace:: {_bench_machine}
"""
