"""Compare two runs of ``benchmarks/run.py`` (issue #22's check): each distsk row's
``x baseline`` (its median over its scenario's baseline, in the same run) now and then.

Absolute medians of two days cannot be compared on this machine (it moves by up to 2x
between days, plain scikit-learn too); a contender's ratio to its own scenario's baseline
in the same run can. Rows more than ``--tolerance`` worse are marked ``<<``.

    python benchmarks/compare.py benchmarks/results/results.json NEW/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(path: Path) -> dict[tuple[str, str], dict]:
    return {(r["scenario"], r["contender"]): r for r in json.loads(path.read_text())}


def compare(old: dict, new: dict, tolerance: float) -> tuple[list[str], int]:
    """The table's lines, and the number of distsk rows beyond ``tolerance``."""
    lines = [f"{'scenario':34} {'contender':30} {'old s':>7} {'new s':>7} "
             f"{'old xb':>6} {'new xb':>6} {'xb ratio':>8}"]
    worse = 0
    for key, r in new.items():
        if not key[1].startswith("distsk") or key not in old:
            continue
        before = old[key]
        if not r["ratio_to_baseline"] or not before["ratio_to_baseline"]:
            continue
        ratio = r["ratio_to_baseline"] / before["ratio_to_baseline"]
        mark = " <<" if ratio > 1 + tolerance else ""
        worse += bool(mark)
        lines.append(f"{key[0]:34} {key[1]:30} {before['median_s']:7.3f} "
                     f"{r['median_s']:7.3f} {before['ratio_to_baseline']:6.2f} "
                     f"{r['ratio_to_baseline']:6.2f} {ratio:8.2f}{mark}")
    return lines, worse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--tolerance", type=float, default=0.05)
    a = p.parse_args(argv)
    lines, worse = compare(rows(a.old), rows(a.new), a.tolerance)
    print("\n".join(lines))
    print(f"\n{worse} distsk row(s) more than {a.tolerance:.0%} worse than before "
          "(x baseline, same run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
