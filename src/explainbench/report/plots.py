"""Figures for both research questions, drawn from the report tables (never from raw files,
so a figure always shows exactly what its table says). Each is saved as PNG and SVG.

- :func:`plot_learning_curves`: PLR accuracy over examples per class for one dataset, one
  line per embedding model with a band of ±1 standard deviation over draws, and a horizontal
  line per LLM at its zero-shot accuracy.
- :func:`plot_stability`: for one dataset, the Spearman correlation of the PLR's word importances
  between draws and against the previous n, over examples per class, one colour per explained model.
- :func:`plot_classification`: macro-F1 by explanation condition for one dataset (mean ± sd
  over folds and seeds), and the paired difference from ``none`` pooled over folds with its
  95% interval.
- :func:`plot_quality_heatmap`: for one explainer, rows dataset x shots x seed, columns the
  explanation-quality metrics (mean over folds); colour is the value scaled per metric over
  all explainers.
- :func:`plot_quality_overview`: for one dataset, rows explainer x shots (every explainer in one
  figure, as the paper's), the same columns, colour scaled per metric over its rows.

With several explainers, :func:`plot_classification` draws one row of panels per explainer.

The rules ``plot_learning_curves``, ``plot_classification`` and ``plot_quality_heatmap`` run
:func:`run_learning_curves`, :func:`run_classification` and :func:`run_quality_heatmap`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import DataError  # noqa: E402
from ..io import atomic_path  # noqa: E402
from .classification import condition_rank  # noqa: E402
from .learning_curves import zeroshot_column, zeroshot_llms  # noqa: E402
from .quality import METRIC_LABELS, quality_metrics_in  # noqa: E402
from .render import read_table  # noqa: E402

log = logging.getLogger("explainbench.report")

DPI = 150


def _save(fig, png: str | Path, svg: str | Path) -> None:
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    with atomic_path(svg) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)


def _rows_for(table: pd.DataFrame, column: str, value: str, what: str, source: str) -> pd.DataFrame:
    rows = table[table[column] == value]
    if rows.empty:
        raise DataError(f"{source}: no rows with {column} = {value!r}; cannot draw {what} "
                          f"(found {sorted(table[column].unique()) if column in table else []})")
    return rows


def _per_model(rows: pd.DataFrame):
    """(model, its rows by ascending n per class, x = n per class, colour) for each model of a PLR table."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, g) in enumerate(rows.groupby("model", sort=True)):
        g = g.sort_values("n_per_class")
        yield model, g, g["n_per_class"].to_numpy(float), colours[i % len(colours)]


def _n_axis(ax, rows: pd.DataFrame, ylabel: str, title: str) -> None:
    """The x axis of n per class (log 2, the grid's n as ticks), labels, grid and legend."""
    ns = sorted(rows["n_per_class"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def plot_learning_curves(table: pd.DataFrame, dataset: str, png: str | Path, svg: str | Path,
                         source: str = "PLR table") -> None:
    rows = _rows_for(table, "dataset", dataset, "learning curves", source)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model, g, x, c in _per_model(rows):
        mean = g["accuracy_mean"].to_numpy(float)
        sd = np.nan_to_num(g["accuracy_std"].to_numpy(float))
        ax.plot(x, mean, marker="o", color=c, label=f"PLR on {model} (mean over {int(g['n_draws'].max())} draws)")
        ax.fill_between(x, mean - sd, mean + sd, color=c, alpha=0.2, linewidth=0)
    for j, llm in enumerate(zeroshot_llms(rows)):
        acc = rows[zeroshot_column(llm)].iloc[0]
        if isinstance(acc, float) and math.isfinite(acc):
            ax.axhline(acc, color="0.25", linestyle=["--", ":", "-."][j % 3], linewidth=1.2,
                       label=f"{llm} zero-shot ({acc:.3f})")
    ax.set_ylim(0, 1.02)
    _n_axis(ax, rows, "test accuracy", f"{dataset}: PLR learning curves (band: ±1 sd over draws)")
    _save(fig, png, svg)


def plot_stability(table: pd.DataFrame, dataset: str, png: str | Path, svg: str | Path,
                   source: str = "PLR table") -> None:
    """How stable the PLR's word importances are over n per class for one dataset: per explained
    model, the Spearman correlation between draws at each n (solid) and against the previous n
    (dashed), from the PLR table's ``stability_draws`` and ``stability_vs_previous_n``."""
    rows = _rows_for(table, "dataset", dataset, "explanation stability", source)
    rows = rows[rows["stability_draws"].notna() | rows["stability_vs_previous_n"].notna()]
    if rows.empty:
        raise DataError(f"{source}: no stability values for {dataset!r}; is any of its models explained "
                        "(plr.explain_models)?")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model, g, x, c in _per_model(rows):
        ax.plot(x, g["stability_draws"].to_numpy(float), marker="o", color=c, label=f"{model}: between draws")
        ax.plot(x, g["stability_vs_previous_n"].to_numpy(float), marker="s", linestyle="--", color=c,
                label=f"{model}: vs previous n")
    lowest = float(np.nanmin(rows[["stability_draws", "stability_vs_previous_n"]].to_numpy(float)))
    ax.set_ylim(min(0.0, lowest - 0.05), 1.02)
    _n_axis(ax, rows, "Spearman correlation of word importances", f"{dataset}: stability of the PLR's word-level explanations")
    _save(fig, png, svg)


def explainer_of(condition: str) -> str | None:
    """The explainer of an LLM condition (``llm-<explainer>-<k>shot[-masked]``); None for none/human."""
    from ..workflow import parse_condition

    return None if condition in ("none", "human") else parse_condition(condition)[0]


def plot_classification(table: pd.DataFrame, dataset: str, png: str | Path, svg: str | Path,
                        source: str = "classification table") -> None:
    """One row of panels per explainer (none, human and that explainer's conditions), as the
    paper's figure; a single row when the table has one explainer or none."""
    rows = _rows_for(table, "dataset", dataset, "classification by condition", source)
    s = rows.drop_duplicates(["method", "classifier", "condition"])
    explainers = sorted({e for e in map(explainer_of, s["condition"].unique()) if e})
    groups = ([s[s["condition"].map(lambda c, e=e: explainer_of(c) in (None, e))] for e in explainers]
              if len(explainers) > 1 else [s])
    width = max(7.5, 1.6 * max(g["condition"].nunique() for g in groups) * 2)
    fig, axes = plt.subplots(len(groups), 2, figsize=(width, 4.2 * len(groups)), squeeze=False)
    for i, group in enumerate(groups):
        title = f"{explainers[i]}: " if len(groups) > 1 else ""
        _classification_row(group, axes[i], title)
    fig.suptitle(f"{dataset}: does an explanation help the classifier?")
    fig.tight_layout()
    _save(fig, png, svg)


def _classification_row(s: pd.DataFrame, axes, title: str) -> None:
    """macro-F1 by condition (mean ± sd) and the pooled paired difference from none, side by side."""
    ax_acc, ax_diff = axes
    conditions = sorted(s["condition"].unique(), key=condition_rank)
    series = list(s.groupby(["method", "classifier"], sort=True))
    width = 0.8 / max(len(series), 1)
    x0 = np.arange(len(conditions))
    for i, ((method, classifier), g) in enumerate(series):
        g = g.set_index("condition")
        offset = (i - (len(series) - 1) / 2) * width
        label = f"{method}: {classifier}"
        present = [k for k, c in enumerate(conditions) if c in g.index]
        cs = [conditions[k] for k in present]
        x = x0[present] + offset
        mean = g.loc[cs, "macro_f1_mean"].to_numpy(float)
        sd = np.nan_to_num(g.loc[cs, "macro_f1_sd"].to_numpy(float))
        ax_acc.errorbar(x, mean, yerr=sd, fmt="o", capsize=3, label=label)
        d = g.loc[cs, "pooled_diff_macro_f1_vs_none"].to_numpy(float)
        dlo = g.loc[cs, "pooled_diff_macro_f1_ci_low"].to_numpy(float)
        dhi = g.loc[cs, "pooled_diff_macro_f1_ci_high"].to_numpy(float)
        keep = np.isfinite(d)
        ax_diff.errorbar(x[keep], d[keep], yerr=[np.nan_to_num(d - dlo)[keep], np.nan_to_num(dhi - d)[keep]],
                         fmt="s", capsize=3, label=label)
    for ax in (ax_acc, ax_diff):
        ax.set_xticks(x0)
        ax.set_xticklabels(conditions, rotation=25, ha="right")
        ax.grid(axis="y", alpha=0.3)
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_ylabel("test macro-F1 (mean ± sd over folds and seeds)")
    ax_acc.set_title(f"{title}macro-F1 by explanation condition")
    ax_diff.axhline(0, color="0.3", linewidth=1)
    ax_diff.set_ylabel("macro-F1 minus 'none', pooled over folds (paired 95% CI)")
    ax_diff.set_title(f"{title}effect of the explanation")
    ax_acc.legend(fontsize=8, loc="lower left")


def plot_quality_heatmap(table: pd.DataFrame, explainer: str, png: str | Path, svg: str | Path,
                         source: str = "explanation quality table") -> None:
    metrics = [m for m in quality_metrics_in(table) if table[m].notna().any()]
    if not metrics:
        raise DataError(f"{source}: no metric columns with values; cannot draw a heat map")
    rows = _rows_for(table, "explainer", explainer, "the quality heat map", source)
    rows = rows.drop_duplicates(["dataset", "shots", "seed"]).sort_values(["dataset", "shots", "seed"])
    columns = [f"{m}_fold_mean" if f"{m}_fold_mean" in table else m for m in metrics]  # the mean over folds
    values = rows[columns].to_numpy(float)
    # Scale each metric over every explainer's rows, so colours compare across heat maps.
    lo, hi = table[columns].min().to_numpy(float), table[columns].max().to_numpy(float)
    span = np.where(hi > lo, hi - lo, np.nan)
    scaled = np.where(np.isnan(span), 0.5, (values - lo) / np.where(np.isnan(span), 1, span))
    scaled = np.ma.masked_invalid(np.where(np.isnan(values), np.nan, scaled))
    labels = [f"{r.dataset} · {int(r.shots)}-shot · seed {int(r.seed)}" for r in rows.itertuples()]
    if "n_folds" in rows and rows["n_folds"].max() > 1:
        labels = [f"{lab} · {int(k)} folds" for lab, k in zip(labels, rows["n_folds"])]
    fig, ax = plt.subplots(figsize=(1.0 * len(metrics) + 3.0, max(2.8, 0.55 * len(labels) + 1.8)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(scaled, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            text = "n/a" if np.isnan(v) else f"{v:.3g}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if np.isnan(v) or scaled[i, j] > 0.6 else "white")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([METRIC_LABELS.get(m, m) for m in metrics], rotation=35, ha="right")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_title(f"Explanation quality of {explainer}")
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("scaled per metric over all explainers\n(0 = lowest row, 1 = highest)", fontsize=8)
    fig.tight_layout()
    _save(fig, png, svg)


def plot_quality_overview(table: pd.DataFrame, dataset: str, png: str | Path, svg: str | Path,
                          source: str = "explanation quality table") -> None:
    """Every explainer x shots of one dataset in one heat map (rows), the quality metrics as
    columns (mean over folds), colour scaled per metric over the rows: the paper's quality figure."""
    rows = _rows_for(table, "dataset", dataset, "the quality overview", source)
    metrics = [m for m in quality_metrics_in(rows) if rows[m].notna().any()]
    if not metrics:
        raise DataError(f"{source}: no metric columns with values for {dataset!r}; cannot draw a heat map")
    rows = rows.drop_duplicates(["explainer", "shots", "seed"]).sort_values(["explainer", "shots", "seed"])
    columns = [f"{m}_fold_mean" if f"{m}_fold_mean" in rows else m for m in metrics]
    values = rows[columns].to_numpy(float)
    lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    span = np.where(hi > lo, hi - lo, np.nan)
    scaled = np.where(np.isnan(span), 0.5, (values - lo) / np.where(np.isnan(span), 1, span))
    scaled = np.ma.masked_invalid(np.where(np.isnan(values), np.nan, scaled))
    seeds = rows["seed"].nunique() > 1
    labels = [f"{r.explainer} · {'zero-shot' if int(r.shots) == 0 else f'{int(r.shots)}-shot'}"
              + (f" · seed {int(r.seed)}" if seeds else "") for r in rows.itertuples()]
    fig, ax = plt.subplots(figsize=(1.0 * len(metrics) + 3.2, max(2.8, 0.5 * len(labels) + 1.8)))
    im = ax.imshow(scaled, cmap=plt.get_cmap("viridis").with_extremes(bad="0.85"), vmin=0, vmax=1, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.3g}", ha="center", va="center", fontsize=8,
                    color="black" if np.isnan(v) or scaled[i, j] > 0.6 else "white")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([METRIC_LABELS.get(m, m) for m in metrics], rotation=35, ha="right")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    n_folds = int(rows["n_folds"].max()) if "n_folds" in rows else 1
    ax.set_title(f"{dataset}: explanation quality against the human explanations (mean over {n_folds} fold(s))")
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("scaled per metric over these rows\n(0 = lowest, 1 = highest)", fontsize=8)
    fig.tight_layout()
    _save(fig, png, svg)


# ----------------------------------------------------------------------------- the plot rules

def _run(job, plot, wildcard: str, what: str) -> None:
    """A plot rule: the report table of ``job.input["table"]`` drawn for one ``wildcard`` value."""
    value = job.wildcards[wildcard]
    plot(read_table(job.input["table"]), value, job.output["png"], job.output["svg"], source=str(job.input["table"]))
    log.info("%s of %s -> %s", what, value, job.output["png"])


def run_learning_curves(job) -> None:
    """Rule ``plot_learning_curves``: PLR table -> one dataset's learning curves."""
    _run(job, plot_learning_curves, "dataset", "learning curves")


def run_stability(job) -> None:
    """Rule ``plot_stability``: PLR table -> one dataset's explanation stability over n."""
    _run(job, plot_stability, "dataset", "explanation stability")


def run_classification(job) -> None:
    """Rule ``plot_classification``: classification table -> one dataset's plot."""
    _run(job, plot_classification, "dataset", "classification")


def run_quality_heatmap(job) -> None:
    """Rule ``plot_quality_heatmap``: explanation-quality table -> one explainer's heat map."""
    _run(job, plot_quality_heatmap, "model", "quality heat map")


def run_quality_overview(job) -> None:
    """Rule ``plot_quality_overview``: explanation-quality table -> one dataset's explainers x shots."""
    _run(job, plot_quality_overview, "dataset", "quality overview")
