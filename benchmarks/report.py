"""The reporting half of the benchmarks: results.json, results.md and results.png."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_json", "markdown_table", "auto_table", "write_markdown", "write_chart"]

#: "distsk auto" should be at most this many times the fastest contender (#16).
AUTO_TARGET = 1.05


def write_json(records: list[dict], path: Path) -> None:
    path.write_text(json.dumps(records, indent=2) + "\n")


def _fmt(value, spec: str, none: str = "—") -> str:
    return none if value is None else format(value, spec)


def _equal(value) -> str:
    return {True: "yes", False: "**NO**", None: "—"}[value]


def markdown_table(records: list[dict]) -> str:
    lines = [
        "| scenario | contender | median (s) | × baseline | fits | = sklearn | predicted (s) "
        "| actual (s) | notes |",
        "|---|---|--:|--:|--:|:-:|--:|--:|---|",
    ]
    for r in records:
        name = r["contender"] + (" (baseline)" if r["contender"] == r["baseline"] else "")
        notes = r["notes"].replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {r['scenario']} | {name} | {_fmt(r['median_s'], '.3f')} | "
            f"{_fmt(r['ratio_to_baseline'], '.2f')} | {_fmt(r['n_fits'], 'd')} | "
            f"{_equal(r.get('equal_to_sklearn'))} | {_fmt(r.get('predicted_s'), '.3f', '')} | "
            f"{_fmt(r.get('actual_s'), '.3f', '')} | {notes} |"
        )
    return "\n".join(lines)


def _peers(records: list[dict], auto: dict) -> list[dict]:
    """The contenders ``auto`` is compared with: its scenario's, and where a scenario
    runs in phases named by a suffix ("distsk auto, + 1 slow worker"), that phase's."""
    _, sep, phase = auto["contender"].partition(", ")
    return [r for r in records if r["scenario"] == auto["scenario"]
            and r["median_s"] is not None
            and (not sep or r["contender"].endswith(sep + phase))
            and not _subset(r, auto)]


def _subset(record: dict, auto: dict) -> bool:
    """Whether ``record`` ran only part of the work (scale-sim's sklearn under joblib's
    Dask backend runs 640 of 2,000 fits): not comparable by time. Shared fits make a
    contender's count smaller too, but never by half against "distsk auto"'s."""
    mine, theirs = auto.get("n_fits"), record.get("n_fits")
    return mine is not None and theirs is not None and theirs < mine / 2


def auto_summary(records: list[dict]) -> list[dict]:
    """Per "distsk auto" record: the fastest contender of its scenario, the ratio, and
    the cost model's predictions beside the actual time."""
    rows = []
    for auto in records:
        if not auto["contender"].startswith("distsk auto"):
            continue
        peers = _peers(records, auto)
        fastest = min(peers, key=lambda r: r["median_s"], default=None)
        ratio = (None if fastest is None or auto["median_s"] is None
                 else round(auto["median_s"] / fastest["median_s"], 3))
        rows.append({
            "scenario": auto["scenario"], "contender": auto["contender"],
            "fastest": None if fastest is None else fastest["contender"],
            "fastest_s": None if fastest is None else fastest["median_s"],
            "auto_s": auto["median_s"], "ratio": ratio,
            "within_target": None if ratio is None else ratio <= AUTO_TARGET,
            "plan": (auto.get("plan") or "").split(":")[0],
            "predicted_s": auto.get("predicted_s"), "actual_s": auto.get("actual_s"),
            "predictions": auto.get("predictions"),
        })
    return rows


def auto_table(records: list[dict]) -> str:
    """"distsk auto" against the fastest contender of each scenario, with the cost
    model's predictions (every engine it considered) and the actual time of its plan."""
    lines = [
        f"| scenario | fastest contender | its median (s) | distsk auto (s) | auto / fastest "
        f"| ≤ {AUTO_TARGET} | auto's plan | predicted (s) | actual (s) | every prediction (s) |",
        "|---|---|--:|--:|--:|:-:|---|--:|--:|---|",
    ]
    for r in auto_summary(records):
        preds = ", ".join(f"{k} {_fmt(v, '.3f', '?')}" for k, v in (r["predictions"] or {}).items())
        ok = {True: "yes", False: "**no**", None: "—"}[r["within_target"]]
        lines.append(
            f"| {r['scenario']} | {r['fastest'] or '—'} | {_fmt(r['fastest_s'], '.3f')} | "
            f"{_fmt(r['auto_s'], '.3f')} | {_fmt(r['ratio'], '.2f')} | {ok} | {r['plan']} | "
            f"{_fmt(r['predicted_s'], '.3f')} | {_fmt(r['actual_s'], '.3f')} | "
            f"{preds or '—'} |"
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
        "## distsk auto against the fastest contender",
        "",
        "`predicted` is the cost model's prediction for the engine it chose and `actual` the "
        "time distsk measured for that same work (the search's fits, without the refit) in "
        "its last run; the wall time in `distsk auto` adds profiling, the probe fit and the "
        "refit.",
        "",
        auto_table(records),
        "",
    ]
    if extra:
        text += [extra, ""]
    path.write_text("\n".join(text))


def _color(r: dict) -> str:
    if r["median_s"] is None or r.get("equal_to_sklearn") is False:
        return "#d62728"  # failed, or a result that differs from sklearn's
    if r["contender"] == r["baseline"]:
        return "#7f7f7f"
    if r["contender"].startswith("distsk"):
        return "#1f77b4"
    return "#ff7f0e"


def _two_and_five(value, _pos) -> str:
    """Label the minor log ticks 0.2, 0.5, 2, 5, 20, ... and leave the others bare."""
    import math

    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (2.0, 5.0) else ""


def write_chart(records: list[dict], path: Path, ncols: int = 2) -> str:
    """One panel per scenario: each contender's time as a ratio to the baseline.

    The y axis is logarithmic (ratios run from ~0.1 to ~200) with the baseline at 1;
    every bar is labelled with its ratio and median seconds. Returns a note for the report.
    """
    try:
        import matplotlib
    except ImportError:
        return "No chart: matplotlib is not installed (pip install matplotlib)."
    matplotlib.use("Agg")
    import math

    import matplotlib.pyplot as plt
    from matplotlib import ticker

    scenarios = list(dict.fromkeys(r["scenario"] for r in records))
    ncols = max(1, min(ncols, len(scenarios)))
    nrows = math.ceil(len(scenarios) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.9 * nrows), squeeze=False)
    for ax in axes.flat[len(scenarios):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, scenarios):
        rows = [r for r in records if r["scenario"] == name]
        ratios = [r["ratio_to_baseline"] for r in rows]
        known = [v for v in ratios if v]
        lo = min([*known, 1.0]) / 3.0
        hi = max([*known, 1.0]) * 3.0
        xs = list(range(len(rows)))
        # Bars run from the baseline (1) down to faster or up to slower contenders; a
        # failed contender has no bar.
        colors = [_color(r) for r in rows]
        ax.bar(xs, [(v - 1.0) if v else 0.0 for v in ratios], bottom=1.0, color=colors,
               width=0.7)
        # A cap at each bar's end, so the baseline (a bar of height 0) shows too.
        ax.hlines([v for v in ratios if v], [x - 0.35 for x, v in zip(xs, ratios) if v],
                  [x + 0.35 for x, v in zip(xs, ratios) if v],
                  colors=[c for c, v in zip(colors, ratios) if v], linewidth=3)
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(_two_and_five))
        ax.axhline(1.0, color="#444444", linewidth=0.8, linestyle="--")
        ax.set_xticks(xs, [r["contender"] for r in rows], rotation=25, ha="right",
                      fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylabel("time / baseline (log)", fontsize=8)
        ax.set_title(f"{name} (baseline: {rows[0]['baseline']})", loc="left", fontsize=10)
        for x, r, v in zip(xs, rows, ratios):
            if r["median_s"] is None:
                text, v = "error", 1.0
            else:
                text = f"×{v or 0:.2f}\n{r['median_s']:.2f} s"
                if r.get("equal_to_sklearn") is False:
                    text += "\n≠ sklearn"
                v = v or 1.0
            below = v < 1.0  # label beyond the bar's end, away from the baseline line
            ax.text(x, v / 1.1 if below else v * 1.1, text, ha="center",
                    va="top" if below else "bottom", fontsize=7)
    fig.suptitle("distsk benchmarks: median time relative to each scenario's baseline "
                 "(below 1 is faster)\ngrey: baseline, blue: distsk, orange: other tools, "
                 "red: error or result differs from sklearn", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![time relative to baseline]({path.name})"
