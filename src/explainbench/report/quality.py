"""Study 1, explanation quality: one row per dataset x fold x explainer x shots x seed, one
column per metric with its 95% interval (from every run's ``corpus.csv``), and each metric's
mean and standard deviation over the folds. Rule ``quality_table``.

``n`` counts the explanations of a fold's test examples; ``n_scored`` those with a human
reference, which the reference-based metrics (BLEU, ROUGE, BERTScore, MAUVE) score (HealthFC
has nine claims without one); ``states_label`` is the share of explanations that name a label.
Every row names its source run: the config hash, the explainer's model path (or hub id), the
seed and the ``corpus.csv`` it was read from.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..files import read_corpus
from ..provenance import config_hash
from .render import MISSING, Document, fmt, with_ci, write_report

log = logging.getLogger("explainbench.report")

# Contract order of the explanation-quality metrics; any other metric a scorer writes is kept,
# after these, in the order it first appears.
QUALITY_METRICS = ["bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1",
                   "mauve", "geval", "states_label"]
REFERENCE_METRICS = ("bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1", "mauve")
METRIC_LABELS = {"bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                 "bertscore_p": "BERTScore P", "bertscore_r": "BERTScore R", "bertscore_f1": "BERTScore F1",
                 "mauve": "MAUVE", "geval": "G-Eval", "states_label": "names a label"}
QUALITY_INTRO = ("Each LLM-written explanation of a test example is scored against all human reference "
                 "explanations (examples without one are left out of the reference-based metrics: n_scored). "
                 "Values are corpus-level scores with bootstrap 95% intervals over test examples, per fold, and "
                 "their mean ± sd over folds; 'names a label' is the share of explanations that state a label word. "
                 "Each row names its source run (config hash, explainer model path, seed).")

KEY = ["dataset", "fold", "explainer", "shots", "seed"]
RUN = ["dataset", "explainer", "shots", "seed"]  # a run over its folds


def metric_order(metrics: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(metrics))
    return [m for m in QUALITY_METRICS if m in seen] + [m for m in seen if m not in QUALITY_METRICS]


def _fold_summary(out: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``n_folds`` and each metric's ``<m>_fold_mean`` / ``<m>_fold_sd`` over a run's folds."""
    groups = out.groupby(RUN, sort=False)
    out["n_folds"] = groups["fold"].transform("count").astype(int)
    for m in metrics:
        out[f"{m}_fold_mean"] = groups[m].transform("mean")
        out[f"{m}_fold_sd"] = groups[m].transform(lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan)
    return out


def quality_table(corpus_paths: Sequence[str | Path], *, config_hash: str,
                  model_paths: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows: dataset x fold x explainer x shots x seed. Columns: ``n``, ``n_scored``, then per
    metric ``<m>``, ``<m>_ci_low``, ``<m>_ci_high``; ``n_folds`` and per metric ``<m>_fold_mean``,
    ``<m>_fold_sd`` (over the run's folds, repeated on each of its rows); then the source run
    (config hash, model path, file)."""
    if not corpus_paths:
        return pd.DataFrame(columns=KEY + ["n", "n_scored", "config_hash", "model_path", "source"])
    long = pd.concat([read_corpus(p) for p in corpus_paths], ignore_index=True)
    dups = long[long.duplicated(KEY + ["metric"], keep=False)]
    if len(dups):
        first = dups.iloc[0]
        raise DataError(f"{sorted(set(dups['source']))}: the same run {first[KEY].to_dict()} is given twice")
    metrics = metric_order(long["metric"])
    rows = []
    for run, group in long.groupby(KEY, sort=True):
        by_metric = group.set_index("metric")
        row = dict(zip(KEY, run))
        row["n"] = int(np.nanmax(group["n"])) if group["n"].notna().any() else pd.NA
        scored = [m for m in REFERENCE_METRICS if m in by_metric.index and not pd.isna(by_metric.at[m, "n"])]
        row["n_scored"] = int(by_metric.at[scored[0], "n"]) if scored else 0
        for m in metrics:
            for suffix, column in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                row[m + suffix] = float(by_metric.at[m, column]) if m in by_metric.index else float("nan")
        row["config_hash"] = config_hash
        row["model_path"] = (model_paths or {}).get(row["explainer"], "")
        row["source"] = group["source"].iloc[0]
        rows.append(row)
    out = _fold_summary(pd.DataFrame(rows), metrics)
    out["n"] = out["n"].astype("Int64")
    tail = ["config_hash", "model_path", "source"]
    return out[[c for c in out.columns if c not in tail] + tail]


def quality_metrics_in(table: pd.DataFrame) -> list[str]:
    """The metric columns of a quality table (those with ``_ci_low`` partners), in order."""
    return [c for c in table.columns if f"{c}_ci_low" in table.columns and f"{c}_ci_high" in table.columns]


def _runs(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop_duplicates(RUN)


def quality_findings(table: pd.DataFrame) -> list[str]:
    """Per dataset and metric, the best explainer x shots (by the mean over folds); per explainer
    x shots, the share of explanations that name a label."""
    out = []
    runs = _runs(table)
    for dataset, group in runs.groupby("dataset", sort=True):
        for m in quality_metrics_in(group):
            col = f"{m}_fold_mean"
            if m == "states_label" or col not in group or not group[col].notna().any():
                continue
            best = group.loc[group[col].idxmax()]
            out.append(f"{dataset}: best {METRIC_LABELS.get(m, m)} is {best['explainer']} {int(best['shots'])}-shot "
                       f"(seed {int(best['seed'])}): {_mean_sd(best, m)} over {int(best['n_folds'])} fold(s)")
        if "states_label_fold_mean" in group:
            for r in group.itertuples():
                share = getattr(r, "states_label_fold_mean")
                if isinstance(share, float) and math.isfinite(share):
                    out.append(f"{dataset}: {r.explainer} {int(r.shots)}-shot explanations name a label in "
                               f"{100 * share:.1f}% of test examples (mean over {int(r.n_folds)} fold(s))")
    return out


def _mean_sd(row, m: str) -> str:
    mean, sd = row[f"{m}_fold_mean"], row[f"{m}_fold_sd"]
    if pd.isna(mean):
        return MISSING
    return fmt(mean) if pd.isna(sd) else f"{fmt(mean)} ± {fmt(sd)}"


def quality_summary_display(table: pd.DataFrame) -> pd.DataFrame:
    runs = _runs(table)
    sums = table.groupby(RUN, sort=False)[["n", "n_scored"]].sum()
    cols = {"dataset": runs["dataset"], "explainer": runs["explainer"], "shots": runs["shots"], "seed": runs["seed"],
            "folds": runs["n_folds"],
            "n": [int(sums.loc[tuple(r)]["n"]) for r in runs[RUN].itertuples(index=False)],
            "n_scored": [int(sums.loc[tuple(r)]["n_scored"]) for r in runs[RUN].itertuples(index=False)]}
    for m in quality_metrics_in(table):
        cols[f"{METRIC_LABELS.get(m, m)} (mean ± sd)"] = [_mean_sd(r, m) for _, r in runs.iterrows()]
    return pd.DataFrame(cols)


def quality_display(table: pd.DataFrame) -> pd.DataFrame:
    cols = {"dataset": table["dataset"], "fold": table["fold"], "explainer": table["explainer"],
            "shots": table["shots"], "seed": table["seed"], "n": table["n"], "n_scored": table["n_scored"]}
    for m in quality_metrics_in(table):
        cols[METRIC_LABELS.get(m, m)] = [with_ci(v, lo, hi) for v, lo, hi in
                                         zip(table[m], table[f"{m}_ci_low"], table[f"{m}_ci_high"])]
    cols.update(config_hash=table["config_hash"], model_path=table["model_path"])
    return pd.DataFrame(cols)


def write_quality(table: pd.DataFrame, csv: str | Path, md: str | Path, html_path: str | Path | None = None) -> None:
    document = Document("Explanation quality", QUALITY_INTRO, quality_findings(table),
                        [("Over folds", quality_summary_display(table)),
                         ("Scores by fold x explainer x shots x seed", quality_display(table))])
    write_report(table, document, csv, md, html_path)


def run(job) -> pd.DataFrame:
    """Rule ``quality_table``: every run's corpus.csv -> the explanation-quality table."""
    corpus = list(job.input["corpus"])
    model_paths = {name: spec["path"] for name, spec in job.settings["models"].items()}
    table = quality_table(corpus, config_hash=config_hash(job.config), model_paths=model_paths)
    write_quality(table, job.output["csv"], job.output["md"], job.output["html"])
    log.info("explanation quality: %d rows from %d runs -> %s", len(table), len(corpus), job.output["csv"])
    return table
