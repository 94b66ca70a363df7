"""Study 1, explanation quality: one row per dataset x explainer x shots x seed, one column per
metric with its 95% interval (from every run's ``corpus.csv``). Rule ``quality_table``.

Every row names its source run: the config hash, the explainer's model path (or hub id), the
seed and the ``corpus.csv`` it was read from.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..files import read_corpus
from ..provenance import config_hash
from .render import Document, with_ci, write_report

log = logging.getLogger("explainbench.report")

# Contract order of the explanation-quality metrics; any other metric a scorer writes is kept,
# after these, in the order it first appears.
QUALITY_METRICS = ["bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1",
                   "mauve", "geval"]
METRIC_LABELS = {"bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                 "bertscore_p": "BERTScore P", "bertscore_r": "BERTScore R", "bertscore_f1": "BERTScore F1",
                 "mauve": "MAUVE", "geval": "G-Eval"}
QUALITY_INTRO = ("Each LLM-written explanation of a test example is scored against all human reference "
                 "explanations. Values are corpus-level scores with bootstrap 95% intervals over test examples; "
                 "each row names its source run (config hash, explainer model path, seed).")

_KEY = ["dataset", "explainer", "shots", "seed"]


def metric_order(metrics: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(metrics))
    return [m for m in QUALITY_METRICS if m in seen] + [m for m in seen if m not in QUALITY_METRICS]


def quality_table(corpus_paths: Sequence[str | Path], *, config_hash: str,
                  model_paths: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows: dataset x explainer x shots x seed. Columns: ``n``, then per metric ``<m>``,
    ``<m>_ci_low``, ``<m>_ci_high``, then the source run (config hash, model path, file)."""
    if not corpus_paths:
        return pd.DataFrame(columns=_KEY + ["n", "config_hash", "model_path", "source"])
    long = pd.concat([read_corpus(p) for p in corpus_paths], ignore_index=True)
    dups = long[long.duplicated(_KEY + ["metric"], keep=False)]
    if len(dups):
        first = dups.iloc[0]
        raise DataError(f"{sorted(set(dups['source']))}: the same run {first[_KEY].to_dict()} is given twice")
    metrics = metric_order(long["metric"])
    rows = []
    for run, group in long.groupby(_KEY, sort=True):
        by_metric = group.set_index("metric")
        row = dict(zip(_KEY, run))
        row["n"] = int(np.nanmax(group["n"])) if group["n"].notna().any() else pd.NA
        for m in metrics:
            for suffix, column in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                row[m + suffix] = float(by_metric.at[m, column]) if m in by_metric.index else float("nan")
        row["config_hash"] = config_hash
        row["model_path"] = (model_paths or {}).get(row["explainer"], "")
        row["source"] = group["source"].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype("Int64")
    return out


def quality_metrics_in(table: pd.DataFrame) -> list[str]:
    """The metric columns of a quality table (those with ``_ci_low`` partners), in order."""
    return [c for c in table.columns if f"{c}_ci_low" in table.columns and f"{c}_ci_high" in table.columns]


def quality_findings(table: pd.DataFrame) -> list[str]:
    """Per dataset and metric, the best explainer x shots row."""
    out = []
    for dataset, group in table.groupby("dataset", sort=True):
        for m in quality_metrics_in(group):
            if group[m].notna().any():
                best = group.loc[group[m].idxmax()]
                out.append(f"{dataset}: best {METRIC_LABELS.get(m, m)} is {best['explainer']} {int(best['shots'])}-shot "
                           f"(seed {int(best['seed'])}): {with_ci(best[m], best[m + '_ci_low'], best[m + '_ci_high'])}")
    return out


def quality_display(table: pd.DataFrame) -> pd.DataFrame:
    cols = {"dataset": table["dataset"], "explainer": table["explainer"], "shots": table["shots"],
            "seed": table["seed"], "n": table["n"]}
    for m in quality_metrics_in(table):
        cols[METRIC_LABELS.get(m, m)] = [with_ci(v, lo, hi) for v, lo, hi in
                                         zip(table[m], table[f"{m}_ci_low"], table[f"{m}_ci_high"])]
    cols.update(config_hash=table["config_hash"], model_path=table["model_path"])
    return pd.DataFrame(cols)


def write_quality(table: pd.DataFrame, csv: str | Path, md: str | Path, html_path: str | Path | None = None) -> None:
    document = Document("Explanation quality", QUALITY_INTRO, quality_findings(table),
                        [("Scores by explainer x shots x seed", quality_display(table))])
    write_report(table, document, csv, md, html_path)


def run(job) -> pd.DataFrame:
    """Rule ``quality_table``: every run's corpus.csv -> the explanation-quality table."""
    corpus = list(job.input["corpus"])
    model_paths = {name: spec["path"] for name, spec in job.settings["models"].items()}
    table = quality_table(corpus, config_hash=config_hash(job.config), model_paths=model_paths)
    write_quality(table, job.output["csv"], job.output["md"], job.output["html"])
    log.info("explanation quality: %d rows from %d runs -> %s", len(table), len(corpus), job.output["csv"])
    return table
