"""The commands a newcomer runs: `distsk info`, `distsk demo --small`, and the tutorial script
of the docs, executed at small size (each checks its own results against sklearn)."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_info_prints_versions_and_compute(capsys):
    from distsk.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in ("distsk", "scikit-learn", "dask", "distributed"):
        assert name in out
    assert "local cores" in out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_small_runs_and_matches_sklearn():
    exe = Path(sys.executable).with_name("distsk")
    done = subprocess.run([str(exe), "demo", "--small"], capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All steps match plain scikit-learn." in done.stdout
    assert "split into 2 sub-forests" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tutorial_script_runs_at_small_size():
    module = runpy.run_path(str(ROOT / "docs" / "examples" / "classic_story.py"))
    assert module["main"](["--small"]) in (None, 0)
