"""The reporting half of the benchmarks: results.json, results.md and results.png."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_json", "markdown_table", "write_markdown", "write_chart"]


def write_json(records: list[dict], path: Path) -> None:
    path.write_text(json.dumps(records, indent=2) + "\n")


def _fmt(value, spec: str, none: str = "—") -> str:
    return none if value is None else format(value, spec)


def _equal(value) -> str:
    return {True: "yes", False: "**NO**", None: "—"}[value]


def markdown_table(records: list[dict]) -> str:
    lines = [
        "| scenario | contender | median (s) | × baseline | fits | = sklearn | notes |",
        "|---|---|--:|--:|--:|:-:|---|",
    ]
    for r in records:
        name = r["contender"] + (" (baseline)" if r["contender"] == r["baseline"] else "")
        notes = r["notes"].replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r['scenario']} | {name} | {_fmt(r['median_s'], '.3f')} | "
            f"{_fmt(r['ratio_to_baseline'], '.2f')} | {_fmt(r['n_fits'], 'd')} | "
            f"{_equal(r.get('equal_to_sklearn'))} | {notes} |"
        )
    return "\n".join(lines)


def write_markdown(records: list[dict], environment: dict, path: Path, extra: str = "") -> None:
    env = environment
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    text = [
        "# distsk benchmark results",
        "",
        f"- mode: {env['mode']} ({env['repeat']} timed run(s) per contender, median reported)",
        f"- machine: {env['local_cores']} local cores; cluster: {env['cluster']}",
        f"- versions: {versions}",
        f"- started: {env['started']}, took {env['wall_s']:.0f} s",
        "",
        "`× baseline` is the contender's median time divided by its scenario's baseline "
        "median (below 1 is faster). `= sklearn` says whether its result (predictions, "
        "probabilities or every candidate's mean_test_score) is identical to plain "
        "scikit-learn's.",
        "",
        markdown_table(records),
        "",
    ]
    if extra:
        text += [extra, ""]
    path.write_text("\n".join(text))


def write_chart(records: list[dict], path: Path) -> str:
    """Bar chart of median times per scenario; returns a note for the report."""
    try:
        import matplotlib
    except ImportError:
        return "No chart: matplotlib is not installed (pip install matplotlib)."
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in records))
    heights = [len([r for r in records if r["scenario"] == s]) for s in scenarios]
    fig, axes = plt.subplots(
        len(scenarios), 1, figsize=(9, 1.2 + 0.45 * sum(heights) + 0.6 * len(scenarios)),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )
    for ax, name in zip(axes[:, 0], scenarios):
        rows = [r for r in records if r["scenario"] == name]
        labels = [r["contender"] for r in rows]
        values = [r["median_s"] or 0.0 for r in rows]
        colors = []
        for r in rows:
            if r["median_s"] is None or r.get("equal_to_sklearn") is False:
                colors.append("#d62728")
            elif r["contender"] == r["baseline"]:
                colors.append("#7f7f7f")
            elif r["contender"].startswith("distsk"):
                colors.append("#1f77b4")
            else:
                colors.append("#ff7f0e")
        ypos = range(len(rows))
        ax.barh(ypos, values, color=colors)
        ax.set_yticks(list(ypos), labels)
        ax.invert_yaxis()
        ax.set_title(f"{name} (baseline: {rows[0]['baseline']})", loc="left", fontsize=10)
        ax.set_xlabel("median seconds")
        top = max(values) if any(values) else 1.0
        ax.set_xlim(0, top * 1.35)
        for y, r in zip(ypos, rows):
            if r["median_s"] is None:
                text = "error"
            else:
                text = f"{r['median_s']:.2f} s  ×{r['ratio_to_baseline'] or 0:.2f}"
                if r.get("equal_to_sklearn") is False:
                    text += "  ≠ sklearn"
            ax.text((r["median_s"] or 0.0) + top * 0.01, y, text, va="center", fontsize=8)
    fig.suptitle("distsk benchmarks (grey: baseline, blue: distsk, red: error or "
                 "result differs from sklearn)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![median times]({path.name})"
