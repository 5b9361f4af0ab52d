"""The floors pyproject.toml claims are the versions CI tests: `.ci/floors.txt` pins every
dependency at exactly its floor, and `.ci/run` runs the fast tests with those pins on the
oldest Python pyproject.toml claims. These tests keep the two files telling the same story."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _claimed_floors() -> dict[str, str]:
    """{name: floor} for every requirement in dependencies and the extras."""
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    floors = {}
    for line in reqs:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "distsk":  # an extra naming other extras
            continue
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == ">=", (
            f"pyproject.toml: {line!r} should state exactly one floor ('>=X'), which "
            ".ci/floors.txt pins and CI tests"
        )
        assert floors.setdefault(name, specs[0].version) == specs[0].version, (
            f"pyproject.toml gives {name} two different floors"
        )
    return floors


def _pinned_floors() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", (
            f".ci/floors.txt: {line!r} should be an exact pin 'name==X'"
        )
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def test_every_floor_in_pyproject_is_pinned_in_ci_floors():
    assert _pinned_floors() == _claimed_floors()


def test_floor_python_is_stated_as_ci_reads_it_and_is_ruffs_target():
    requires = _pyproject()["project"]["requires-python"]
    match = re.fullmatch(r">=(3\.\d+)", requires)
    assert match, f"requires-python {requires!r} should be '>=3.X' (.ci/run reads it)"
    ruff_target = _pyproject()["tool"]["ruff"]["target-version"]
    assert ruff_target == "py" + match.group(1).replace(".", "")

