"""tests/upstream runs scikit-learn's own test files under distsk's joblib backend
(``run_sklearn_suites.py``); it is a tool, not part of this project's test run."""

collect_ignore_glob = ["*.py"]
