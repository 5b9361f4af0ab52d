"""The commands a newcomer runs: `distsk info`, `distsk demo --small`, and the tutorial script
of the docs, executed at small size (each checks its own results against sklearn)."""

import re
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


def _demo_small():
    exe = Path(sys.executable).with_name("distsk")
    return subprocess.run([str(exe), "demo", "--small"], capture_output=True, text=True,
                          timeout=280)


def _without_times(text):
    return re.sub(r" +\d+\.\d\d s", " #.## s", text)  # a time and its padding


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_explains_itself_in_short_lines_quietly_and_the_same_every_run():
    first, second = _demo_small(), _demo_small()
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert first.stderr == ""  # no third-party chatter (xgboost's "got rank", warnings)
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "All 5 steps passed. (a), (b), (e): identical to plain scikit-learn." in out
    text = " ".join(out.split())  # the notes wrap at 100 characters
    assert "split into 2 sub-forests" in text
    assert re.search(r"run on this machine's \d+ cores", text) and "adds no compute" in text
    assert text.count("Forced max_gather_bytes=0") == 2  # (c) and (d) say why they are slow
    assert "12 fits nominal, 6 performed" in text
    assert re.search(r"\(c\): predictions [\d,]+ of 4,000 equal \([\d.]+ %\) with plain "
                     r"sklearn's\.", out)
    assert re.search(r"\(d\): predictions [\d,]+ of 4,000 equal \([\d.]+ %\) with plain "
                     r"xgboost's\.", out)
    assert "free" not in out  # no free-memory figures, which drift
    assert _without_times(second.stdout) == _without_times(out)
    assert second.stderr == ""


def test_bench_runs_the_checkouts_benchmarks_from_any_directory_of_it(tmp_path):
    exe = Path(sys.executable).with_name("distsk")
    done = subprocess.run([str(exe), "bench", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT / "docs")
    assert done.returncode == 0, done.stderr
    assert "usage: benchmarks/run.py" in done.stdout


def test_bench_from_an_installed_wheel_says_where_to_run_it(tmp_path, capsys):
    from distsk.cli import _bench

    assert _bench(["--help"], package_root=tmp_path, cwd=tmp_path) == 2
    err = capsys.readouterr().err
    assert max(len(line) for line in err.splitlines()) <= 100
    err = " ".join(err.split())
    assert "part of the distsk source checkout" in err
    assert "cd <clone> && .venv/bin/distsk bench --help" in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tutorial_script_runs_at_small_size():
    module = runpy.run_path(str(ROOT / "docs" / "examples" / "classic_story.py"))
    assert module["main"](["--small"]) in (None, 0)
