"""Study 2, PLR learning curves: one row per dataset x embedding model x n per class, mean and
standard deviation over draws (from every ``curve.csv``), each LLM's zero-shot accuracy as a
reference column and the smallest n per class at which the PLR mean reaches it (from the
zero-shot ``metrics.json``), how stable the PLR's word importances are at that n (from
``stability.csv``: between draws, and against the previous n), and the PLR's top phrases (from
``phrases.csv``). Rule ``plr_table``.

Every row names its source run: the config hash, the embedding model's path, the PLR seed and
the ``curve.csv`` (and zero-shot files) it was read from.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import DataError
from ..files import PHRASE_COLUMNS, read_curve, read_metrics, read_phrases, read_stability
from ..plr.curve import curve_summary, smallest_n_reaching
from ..provenance import config_hash
from .render import Document, fmt, write_report

log = logging.getLogger("explainbench.report")

BASE_COLUMNS = ["dataset", "model", "n_per_class", "n_draws", "accuracy_mean", "accuracy_std",
                "macro_f1_mean", "macro_f1_std", "C_median"]
STABILITY_COLUMNS = ["stability_draws", "stability_vs_previous_n"]
PLR_INTRO = ("Penalised logistic regression on frozen embeddings, trained on n examples per class (mean ± sd "
             "over random draws), against each LLM's zero-shot next-token accuracy on the same test split. "
             "'n reaching' is the smallest n per class whose mean PLR accuracy is at least the zero-shot accuracy. "
             "Stability (explained models): the Spearman rank correlation of the word importances (each word's mean "
             "occlusion contribution over the explained test texts), mean over pairs of draws at that n and over "
             "labels ('between draws'), and between the importances at that n and at the previous n, averaged over "
             "draws ('vs previous n').")


def zeroshot_column(llm: str) -> str:
    return f"zeroshot_accuracy_{llm}"


def reach_column(llm: str) -> str:
    return f"n_per_class_reaching_{llm}"


def zeroshot_llms(table: pd.DataFrame) -> list[str]:
    """The LLMs a PLR table holds a zero-shot reference column for."""
    return [c[len("zeroshot_accuracy_"):] for c in table.columns if c.startswith("zeroshot_accuracy_")]


def _zeroshot_references(paths: Sequence[str | Path]) -> dict[str, dict[str, tuple[float, str]]]:
    """dataset -> LLM -> (zero-shot accuracy without explanations, metrics.json)."""
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for path in paths:
        m = read_metrics(path)
        if m["condition"] != "none":
            raise DataError(f"{path}, field 'condition': {m['condition']!r}; the PLR reference is the "
                            "zero-shot accuracy without explanations ('none')")
        out.setdefault(m["dataset"], {})[m["classifier"]] = (float(m["accuracy"]), str(path))
    return out


def _curve_rows(curve: pd.DataFrame, refs: dict[str, tuple[float, str]], llms: list[str]) -> list[dict]:
    """One curve's rows: the draws of each n per class summarised, with the zero-shot references."""
    dataset, model = curve["dataset"].iloc[0], curve["model"].iloc[0]
    agg = curve_summary(curve)
    reach = {}
    for llm in llms:
        acc = refs.get(llm, (float("nan"), ""))[0]
        reach[llm] = (acc, smallest_n_reaching(agg["n_per_class"], agg["accuracy_mean"], acc))
    rows = []
    for _, a in agg.iterrows():
        row = dict(dataset=dataset, model=model, **{k: a[k] for k in BASE_COLUMNS[2:]})
        for llm, (acc, n) in reach.items():
            row[zeroshot_column(llm)] = acc
            row[reach_column(llm)] = n
        rows.append(row)
    return rows


def stability_by_n(stability_paths: Sequence[str | Path]) -> pd.DataFrame:
    """Per dataset x model x n per class: ``stability_draws`` (mean Spearman over the pairs of draws
    and the labels at that n) and ``stability_vs_previous_n`` (mean over labels of the Spearman
    between that n and the previous n of the grid)."""
    frames = [df for df in (read_stability(p) for p in stability_paths) if not df.empty]
    keys = ["dataset", "model", "n_per_class"]
    if not frames:
        return pd.DataFrame(columns=keys + STABILITY_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    draws = (df[df["comparison"] == "draws"].groupby(["dataset", "model", "n_a"])["spearman"].mean()
             .rename("stability_draws"))
    by_n = (df[df["comparison"] == "n"].groupby(["dataset", "model", "n_b"])["spearman"].mean()
            .rename("stability_vs_previous_n"))
    draws.index = draws.index.set_names(keys)
    by_n.index = by_n.index.set_names(keys)
    return pd.concat([draws, by_n], axis=1).reset_index()


def plr_table(curve_paths: Sequence[str | Path], zeroshot_paths: Sequence[str | Path] = (), *,
              config_hash: str, model_paths: dict[str, str] | None = None, seed: int | None = None,
              stability_paths: Sequence[str | Path] = ()) -> pd.DataFrame:
    """One row per dataset x embedding model x n per class: mean and standard deviation of
    accuracy and macro-F1 over draws, the median chosen C, per zero-shot LLM of that
    dataset its accuracy (``zeroshot_accuracy_<llm>``) and the smallest n per class at which
    the PLR mean accuracy reaches it (``n_per_class_reaching_<llm>``; empty if never), and the
    stability of the word importances at that n (:func:`stability_by_n`; empty for a model
    that is not explained)."""
    zeroshot = _zeroshot_references(zeroshot_paths)
    llms = list(dict.fromkeys(llm for d in zeroshot.values() for llm in d))
    columns = (BASE_COLUMNS + [c for llm in llms for c in (zeroshot_column(llm), reach_column(llm))]
               + STABILITY_COLUMNS + ["config_hash", "model_path", "seed", "source", "zeroshot_sources"])
    if not curve_paths:
        return pd.DataFrame(columns=columns)
    rows = []
    for curve in (read_curve(p) for p in curve_paths):
        refs = zeroshot.get(curve["dataset"].iloc[0], {})
        source = dict(config_hash=config_hash, model_path=(model_paths or {}).get(curve["model"].iloc[0], ""),
                      seed=seed, source=curve["source"].iloc[0],
                      zeroshot_sources=";".join(src for _, src in refs.values()))
        rows += [dict(row, **source) for row in _curve_rows(curve, refs, llms)]
    out = pd.DataFrame(rows)
    dup = out[out.duplicated(["dataset", "model", "n_per_class"], keep=False)]
    if len(dup):
        raise DataError(f"{sorted(set(dup['source']))}: the same dataset/model curve is given twice")
    out["n_per_class"] = out["n_per_class"].astype(int)
    stab = stability_by_n(stability_paths)
    stab["n_per_class"] = stab["n_per_class"].astype(int)
    out = out.merge(stab, on=["dataset", "model", "n_per_class"], how="left")
    out = out.sort_values(["dataset", "model", "n_per_class"], kind="stable").reset_index(drop=True)
    out["n_draws"] = out["n_draws"].astype(int)
    for llm in llms:
        out[reach_column(llm)] = out[reach_column(llm)].astype("Int64")
    out["seed"] = out["seed"].astype("Int64")
    return out[columns]


def top_phrases(phrase_paths: Sequence[str | Path], top: int) -> pd.DataFrame:
    """The ``top`` phrases per dataset x model x label from ``phrases.csv`` files (by rank)."""
    frames = [df for df in (read_phrases(p) for p in phrase_paths) if not df.empty]
    if not frames:
        return pd.DataFrame(columns=PHRASE_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    df = df[df["rank"] <= top].sort_values(["dataset", "model", "label", "rank"], kind="stable")
    return df.reset_index(drop=True)


def plr_findings(table: pd.DataFrame) -> list[str]:
    """Research question 2: with how many examples per class does PLR match each LLM zero-shot?"""
    out = []
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=True):
        best = group.loc[group["accuracy_mean"].idxmax()]
        for llm in zeroshot_llms(group):
            ref = group[zeroshot_column(llm)].iloc[0]
            if not (isinstance(ref, float) and math.isfinite(ref)):
                continue
            reach = group[reach_column(llm)].iloc[0]
            if pd.isna(reach):
                out.append(f"{dataset}: PLR on {model} embeddings does not reach {llm} zero-shot accuracy "
                           f"{ref:.3f} by n = {int(group['n_per_class'].max())} per class (best mean "
                           f"{best['accuracy_mean']:.3f} at n = {int(best['n_per_class'])})")
            else:
                at = group[group["n_per_class"] == reach].iloc[0]
                out.append(f"{dataset}: PLR on {model} embeddings reaches {llm} zero-shot accuracy {ref:.3f} "
                           f"at n = {int(reach)} per class (mean {at['accuracy_mean']:.3f} ± {fmt(at['accuracy_std'])} "
                           f"over {int(at['n_draws'])} draws)")
        if not zeroshot_llms(group):
            out.append(f"{dataset}: PLR on {model} embeddings: best mean accuracy {best['accuracy_mean']:.3f} "
                       f"at n = {int(best['n_per_class'])} per class (no zero-shot reference configured)")
        stable = group.dropna(subset=["stability_draws"]) if "stability_draws" in group else group.iloc[:0]
        if len(stable):
            first, last = stable.iloc[0], stable.iloc[-1]
            out.append(f"{dataset}: the word importances of PLR on {model} correlate {fmt(first['stability_draws'])} "
                       f"between draws at n = {int(first['n_per_class'])} per class and {fmt(last['stability_draws'])} "
                       f"at n = {int(last['n_per_class'])} (Spearman, mean over draw pairs)")
    return out


def _mean_sd(means, sds) -> list[str]:
    return [f"{fmt(m)} ± {fmt(s)}" for m, s in zip(means, sds)]


def plr_display(table: pd.DataFrame) -> pd.DataFrame:
    cols = {"dataset": table["dataset"], "model": table["model"], "n per class": table["n_per_class"],
            "draws": table["n_draws"],
            "accuracy (mean ± sd)": _mean_sd(table["accuracy_mean"], table["accuracy_std"]),
            "macro-F1 (mean ± sd)": _mean_sd(table["macro_f1_mean"], table["macro_f1_std"])}
    for llm in zeroshot_llms(table):
        cols[f"{llm} zero-shot acc."] = [fmt(v) for v in table[zeroshot_column(llm)]]
        cols[f"n reaching {llm}"] = ["–" if pd.isna(v) else str(int(v)) for v in table[reach_column(llm)]]
    cols["word-rank stability between draws"] = [fmt(v) for v in table["stability_draws"]]
    cols["word-rank stability vs previous n"] = [fmt(v) for v in table["stability_vs_previous_n"]]
    cols.update(config_hash=table["config_hash"], model_path=table["model_path"],
                seed=["–" if pd.isna(s) else str(int(s)) for s in table["seed"]])
    return pd.DataFrame(cols)


def write_plr(table: pd.DataFrame, csv: str | Path, md: str | Path, html_path: str | Path | None = None,
              phrases: pd.DataFrame | None = None) -> None:
    sections = [("Learning curves", plr_display(table))]
    if phrases is not None and not phrases.empty:
        sections.append(("Top phrases of the PLR (largest mean contribution to each label over the explained texts "
                         "and draws; sd over draws; count: occurrences in the explained texts)",
                         phrases[["dataset", "model", "label", "rank", "phrase", "mean_contribution", "sd_over_draws",
                                  "count"]]))
    write_report(table, Document("PLR learning curves", PLR_INTRO, plr_findings(table), sections), csv, md, html_path)


def run(job) -> pd.DataFrame:
    """Rule ``plr_table``: every curve.csv, the LLMs' zero-shot metrics.json and the PLR phrases
    -> the PLR learning-curve table."""
    curves = list(job.input["curves"])
    model_paths = {name: spec["path"] for name, spec in job.settings["models"].items()}
    table = plr_table(curves, list(job.input["zeroshot"]), config_hash=config_hash(job.config),
                      model_paths=model_paths, seed=job.settings["seed"],
                      stability_paths=list(job.input.get("stability", [])))
    phrases = top_phrases(list(job.input["phrases"]), top=job.settings["top_phrases"])
    write_plr(table, job.output["csv"], job.output["md"], job.output["html"], phrases=phrases)
    log.info("PLR: %d rows from %d curves -> %s", len(table), len(curves), job.output["csv"])
    return table
