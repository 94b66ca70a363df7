"""Tables people can read, built from the per-run files of every stage.

Three studies, three tidy tables (CSV for machines, Markdown and HTML for people):

- :func:`quality_table`: explanation quality, one row per dataset x explainer x shots x
  seed, one column per metric with its 95% interval (from ``results/quality/.../corpus.csv``).
- :func:`classification_table`: fine-tuned PLMs and zero-shot LLMs by explanation condition,
  one row per dataset x method x classifier x condition x seed; mean and standard deviation
  over seeds; the difference from condition ``none`` with a paired bootstrap interval over
  the same test items (from ``metrics.json`` + ``predictions.csv``).
- :func:`plr_table`: PLR learning curves, mean and standard deviation over draws for each
  n per class, each LLM's zero-shot accuracy as a reference column and the smallest n per
  class at which the PLR mean reaches it (from ``curve.csv`` and zero-shot ``metrics.json``).

Every row names its source run: the config hash, the model path (or hub id), the seed and
the per-run file it was read from. Bad input raises :class:`ReportError` naming the file,
the row and the field.
"""
from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import ExplainBenchError
from ..stats import mean_ci, paired_difference_ci

log = logging.getLogger("explainbench.report")

# Contract order of the explanation-quality metrics; any other metric a scorer writes is kept,
# after these, in the order it first appears.
QUALITY_METRICS = ["bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1",
                   "mauve", "geval"]
METRIC_LABELS = {"bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                 "bertscore_p": "BERTScore P", "bertscore_r": "BERTScore R", "bertscore_f1": "BERTScore F1",
                 "mauve": "MAUVE", "geval": "G-Eval"}

CORPUS_COLUMNS = ["dataset", "explainer", "shots", "seed", "metric", "value", "ci_low", "ci_high", "n"]
CURVE_COLUMNS = ["dataset", "model", "n_per_class", "draw", "accuracy", "macro_f1", "C"]
PREDICTION_COLUMNS = ["id", "gold", "pred", "correct"]
METRICS_KEYS = ["dataset", "classifier", "method", "condition", "seed", "model_path", "n", "n_invalid",
                "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci"]
PHRASE_COLUMNS = ["dataset", "model", "label", "phrase", "ngram", "mean_contribution", "count", "rank"]

_QUALITY_PATH = re.compile(r"quality/(?P<dataset>[^/]+)/(?P<explainer>[^/]+)/(?P<shots>\d+)shot/seed(?P<seed>\d+)/corpus\.csv$")
_CURVE_PATH = re.compile(r"plr/(?P<dataset>[^/]+)/(?P<model>[^/]+)/curve\.csv$")


class ReportError(ExplainBenchError):
    """A per-run file breaks its contract; the message names the file, row and field."""


# ----------------------------------------------------------------------------- reading

def _read_csv(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a per-run CSV as strings (nothing is guessed) and check its columns."""
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ReportError(f"{path}: file is empty (expected a header with columns {list(required)})") from None
    except pd.errors.ParserError as err:
        raise ReportError(f"{path}: not a valid CSV ({err})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def _number(path, row: int, field: str, value, *, allow_empty: bool = True, integer: bool = False) -> float:
    """One cell as a number; ``row`` counts file lines (the header is line 1)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "null")):
        if allow_empty:
            return float("nan")
        raise ReportError(f"{path}, row {row}, field {field!r}: empty, a number is required")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ReportError(f"{path}, row {row}, field {field!r}: not a number: {value!r}") from None
    if integer and not (math.isfinite(out) and out == int(out)):
        raise ReportError(f"{path}, row {row}, field {field!r}: not an integer: {value!r}")
    return out


def _numbers(df: pd.DataFrame, path, field: str, **kw) -> np.ndarray:
    return np.array([_number(path, i + 2, field, v, **kw) for i, v in enumerate(df[field].tolist())], dtype=float)


def _read_json(path: str | Path, required: Sequence[str]) -> dict:
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(obj, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ReportError(f"{path}: missing field(s) {missing}")
    return obj


def _check_path(path, pattern: re.Pattern, found: dict) -> None:
    """Where a file's path names its run (dataset, model, shots, seed), its content must agree."""
    match = pattern.search(Path(path).as_posix())
    if not match:
        return
    for field, expected in match.groupdict().items():
        if str(found[field]) != expected:
            raise ReportError(f"{path}: field {field!r} is {str(found[field])!r} but the file's path says {expected!r}")


def _model_path(model_paths: dict | None, name: str) -> str:
    return (model_paths or {}).get(name, "")


# ----------------------------------------------------------------------------- explanation quality

def read_corpus(path: str | Path) -> pd.DataFrame:
    """One ``corpus.csv`` (tidy: one row per metric) with its numbers checked."""
    raw = _read_csv(path, CORPUS_COLUMNS)
    if raw.empty:
        raise ReportError(f"{path}: no metric rows")
    df = raw[CORPUS_COLUMNS].copy()
    for field in ("value", "ci_low", "ci_high"):
        df[field] = _numbers(raw, path, field)
    df["n"] = _numbers(raw, path, "n", integer=True)
    df["shots"] = _numbers(raw, path, "shots", allow_empty=False, integer=True).astype(int)
    df["seed"] = _numbers(raw, path, "seed", allow_empty=False, integer=True).astype(int)
    for field in ("dataset", "explainer", "metric"):
        empty = df.index[df[field].str.strip() == ""]
        if len(empty):
            raise ReportError(f"{path}, row {empty[0] + 2}, field {field!r}: empty")
    keys = df[["dataset", "explainer", "shots", "seed"]].drop_duplicates()
    if len(keys) != 1:
        raise ReportError(f"{path}: holds more than one run {keys.to_dict('records')}; expected one dataset/explainer/shots/seed")
    dup = df.index[df["metric"].duplicated()]
    if len(dup):
        raise ReportError(f"{path}, row {dup[0] + 2}, field 'metric': {df.loc[dup[0], 'metric']!r} appears twice")
    _check_path(path, _QUALITY_PATH, keys.iloc[0].to_dict())
    df["source"] = str(path)
    return df


def metric_order(metrics: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(metrics))
    return [m for m in QUALITY_METRICS if m in seen] + [m for m in seen if m not in QUALITY_METRICS]


def quality_table(corpus_paths: Sequence[str | Path], *, config_hash: str, model_paths: dict | None = None) -> pd.DataFrame:
    """Rows: dataset x explainer x shots x seed. Columns: ``n``, then per metric ``<m>``,
    ``<m>_ci_low``, ``<m>_ci_high``, then the source run (config hash, model path, file)."""
    key = ["dataset", "explainer", "shots", "seed"]
    if not corpus_paths:
        return pd.DataFrame(columns=key + ["n", "config_hash", "model_path", "source"])
    long = pd.concat([read_corpus(p) for p in corpus_paths], ignore_index=True)
    dups = long[long.duplicated(key + ["metric"], keep=False)]
    if len(dups):
        first = dups.iloc[0]
        raise ReportError(f"{sorted(set(dups['source']))}: the same run {first[key].to_dict()} is given twice")
    metrics = metric_order(long["metric"])
    rows = []
    for run, group in long.groupby(key, sort=True):
        by_metric = group.set_index("metric")
        row = dict(zip(key, run))
        row["n"] = int(np.nanmax(group["n"])) if group["n"].notna().any() else pd.NA
        for m in metrics:
            for suffix, field in (("", "value"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                row[m + suffix] = float(by_metric.at[m, field]) if m in by_metric.index else float("nan")
        row["config_hash"] = config_hash
        row["model_path"] = _model_path(model_paths, row["explainer"])
        row["source"] = group["source"].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype("Int64")
    return out


def quality_metrics_in(table: pd.DataFrame) -> list[str]:
    """The metric columns of a quality table (those with ``_ci_low`` partners), in order."""
    return [c for c in table.columns if f"{c}_ci_low" in table.columns and f"{c}_ci_high" in table.columns]


# ----------------------------------------------------------------------------- classification

_TRUE = {"1", "1.0", "true", "t", "yes"}
_FALSE = {"0", "0.0", "false", "f", "no"}


def read_predictions(path: str | Path) -> pd.DataFrame:
    """``predictions.csv`` with ``correct`` as 0/1, checked against ``gold == pred``."""
    raw = _read_csv(path, PREDICTION_COLUMNS)
    correct = []
    for i, value in enumerate(raw["correct"].tolist()):
        v = value.strip().lower()
        if v in _TRUE:
            correct.append(1.0)
        elif v in _FALSE:
            correct.append(0.0)
        else:
            raise ReportError(f"{path}, row {i + 2}, field 'correct': expected 0/1 or true/false, got {value!r}")
    df = raw[PREDICTION_COLUMNS].copy()
    df["correct"] = correct
    empty = df.index[df["id"].str.strip() == ""]
    if len(empty):
        raise ReportError(f"{path}, row {empty[0] + 2}, field 'id': empty")
    dup = df.index[df["id"].duplicated()]
    if len(dup):
        raise ReportError(f"{path}, row {dup[0] + 2}, field 'id': {df.at[dup[0], 'id']!r} appears twice")
    agree = (df["gold"] == df["pred"]).astype(float) == df["correct"]
    if not agree.all():
        i = int(np.flatnonzero(~agree.to_numpy())[0])
        raise ReportError(f"{path}, row {i + 2}, field 'correct': {raw.at[i, 'correct']!r} but gold is "
                          f"{df.at[i, 'gold']!r} and pred is {df.at[i, 'pred']!r}")
    return df


def predictions_path(metrics_path: str | Path) -> Path:
    """The ``predictions.csv`` that sits beside a ``metrics.json``."""
    return Path(metrics_path).with_name("predictions.csv")


def _interval(obj: dict, key: str, path) -> tuple[float, float]:
    ci = obj[key]
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        raise ReportError(f"{path}, field {key!r}: expected [low, high], got {ci!r}")
    return tuple(float("nan") if v is None else float(v) for v in ci)


def read_run(metrics_path: str | Path) -> tuple[dict, pd.DataFrame]:
    """One classification run: its metrics.json (checked) and its predictions."""
    m = _read_json(metrics_path, METRICS_KEYS)
    if m["method"] not in ("finetune", "zeroshot"):
        raise ReportError(f"{metrics_path}, field 'method': {m['method']!r}; expected 'finetune' or 'zeroshot'")
    if isinstance(m["seed"], str) and m["seed"].strip().isdigit():
        m["seed"] = int(m["seed"])  # a seed taken from a wildcard may arrive as text
    if m["seed"] is not None and (not isinstance(m["seed"], int) or isinstance(m["seed"], bool)):
        raise ReportError(f"{metrics_path}, field 'seed': {m['seed']!r}; expected an integer or null")
    for key in ("accuracy", "macro_f1", "n", "n_invalid"):
        if not isinstance(m[key], (int, float)) or isinstance(m[key], bool):
            raise ReportError(f"{metrics_path}, field {key!r}: not a number: {m[key]!r}")
    preds = read_predictions(predictions_path(metrics_path))
    pred_file = predictions_path(metrics_path)
    if len(preds) != m["n"]:
        raise ReportError(f"{metrics_path}, field 'n': {m['n']} but {pred_file} has {len(preds)} rows")
    if len(preds) and abs(preds["correct"].mean() - m["accuracy"]) > 1e-9:
        raise ReportError(f"{metrics_path}, field 'accuracy': {m['accuracy']} but {pred_file} gives "
                          f"{preds['correct'].mean():.6f}; the two files are from different runs")
    return m, preds


def _condition_rank(condition: str) -> tuple[int, str]:
    return ({"none": 0, "human": 1}.get(condition, 2), condition)


def _aligned(a: pd.DataFrame, b: pd.DataFrame, name_a, name_b) -> tuple[np.ndarray, np.ndarray]:
    """Per-item correctness of two runs on the same test ids, in one order."""
    ids_a, ids_b = set(a["id"]), set(b["id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        raise ReportError(f"paired comparison needs the same test ids: {len(only_a)} only in {name_a} "
                          f"(e.g. {only_a[:3]}), {len(only_b)} only in {name_b} (e.g. {only_b[:3]})")
    sa, sb = a.set_index("id")["correct"], b.set_index("id")["correct"]
    order = sorted(ids_a)
    return sa.loc[order].to_numpy(float), sb.loc[order].to_numpy(float)


def _item_mean(runs: list[tuple[dict, pd.DataFrame, str]]) -> pd.DataFrame:
    """Per test item, the mean correctness over the runs (seeds) given; ids must agree."""
    base = runs[0][1]
    cols = []
    for _, preds, src in runs:
        a, _ = _aligned(preds, base, src, runs[0][2])
        cols.append(a)
    return pd.DataFrame({"id": sorted(set(base["id"])), "correct": np.mean(cols, axis=0)})


def classification_table(metrics_paths: Sequence[str | Path], *, config_hash: str, n_boot: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """One row per dataset x method x classifier x condition x seed.

    Per run: accuracy, macro-F1 and their 95% intervals, n, n_invalid (read from metrics.json),
    and ``diff_vs_none`` = accuracy minus the accuracy of condition ``none`` with the same
    dataset, method, classifier and seed, with a paired bootstrap interval over the same test
    items (from predictions.csv). Per group over seeds (repeated on each of its rows):
    ``n_seeds``, mean and standard deviation of accuracy and macro-F1, a bootstrap interval of
    the seed-mean accuracy over test items, and the seed-mean difference from ``none`` with a
    paired bootstrap interval.
    """
    group_key = ["dataset", "method", "classifier", "condition"]
    runs = {}
    for path in metrics_paths:
        m, preds = read_run(path)
        key = (m["dataset"], m["method"], m["classifier"], m["condition"], m["seed"])
        if key in runs:
            raise ReportError(f"{path}: the same run {dict(zip(group_key + ['seed'], key))} is also in {runs[key][2]}")
        runs[key] = (m, preds, str(path))
    rows = []
    for key in sorted(runs, key=lambda k: (k[0], k[1], k[2], _condition_rank(k[3]), -1 if k[4] is None else k[4])):
        m, preds, src = runs[key]
        lo, hi = _interval(m, "accuracy_ci", src)
        f_lo, f_hi = _interval(m, "macro_f1_ci", src)
        row = dict(dataset=m["dataset"], method=m["method"], classifier=m["classifier"], condition=m["condition"],
                   seed=m["seed"], n=int(m["n"]), n_invalid=int(m["n_invalid"]),
                   accuracy=float(m["accuracy"]), accuracy_ci_low=lo, accuracy_ci_high=hi,
                   macro_f1=float(m["macro_f1"]), macro_f1_ci_low=f_lo, macro_f1_ci_high=f_hi,
                   diff_vs_none=float("nan"), diff_ci_low=float("nan"), diff_ci_high=float("nan"))
        base = runs.get(key[:3] + ("none", key[4]))
        if key[3] != "none" and base is not None:
            a, b = _aligned(preds, base[1], src, base[2])
            d = paired_difference_ci(a, b, n_boot=n_boot, seed=seed)
            row.update(diff_vs_none=d["diff"], diff_ci_low=d["ci_low"], diff_ci_high=d["ci_high"])
        elif key[3] != "none":
            log.warning("%s: no run of condition 'none' with the same dataset/method/classifier/seed; "
                        "no difference from none", src)
        row.update(config_hash=config_hash, model_path=m["model_path"], source=src)
        rows.append(row)
    columns = (["dataset", "method", "classifier", "condition", "seed", "n", "n_invalid", "accuracy",
                "accuracy_ci_low", "accuracy_ci_high", "macro_f1", "macro_f1_ci_low", "macro_f1_ci_high",
                "diff_vs_none", "diff_ci_low", "diff_ci_high"] + SEED_SUMMARY_COLUMNS
               + ["config_hash", "model_path", "source"])
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    summary = _seed_summary(runs, n_boot, seed)
    out = out.merge(summary, on=group_key, how="left", sort=False)
    return out[columns]


SEED_SUMMARY_COLUMNS = ["n_seeds", "accuracy_seed_mean", "accuracy_seed_std", "accuracy_seed_mean_ci_low",
                        "accuracy_seed_mean_ci_high", "macro_f1_seed_mean", "macro_f1_seed_std",
                        "diff_seed_mean_vs_none", "diff_seed_mean_ci_low", "diff_seed_mean_ci_high"]


def _seed_summary(runs: dict, n_boot: int, seed: int) -> pd.DataFrame:
    groups: dict[tuple, dict] = {}
    for key, run in runs.items():
        groups.setdefault(key[:4], {})[key[4]] = run
    rows = []
    for gkey, by_seed in groups.items():
        seeds = sorted(by_seed, key=lambda s: -1 if s is None else s)
        acc = np.array([by_seed[s][0]["accuracy"] for s in seeds], float)
        f1 = np.array([by_seed[s][0]["macro_f1"] for s in seeds], float)
        items = _item_mean([by_seed[s] for s in seeds])
        ci = mean_ci(items["correct"].to_numpy(), n_boot=n_boot, seed=seed)
        row = dict(zip(["dataset", "method", "classifier", "condition"], gkey), n_seeds=len(seeds),
                   accuracy_seed_mean=float(acc.mean()), accuracy_seed_std=float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
                   accuracy_seed_mean_ci_low=ci["ci_low"], accuracy_seed_mean_ci_high=ci["ci_high"],
                   macro_f1_seed_mean=float(f1.mean()), macro_f1_seed_std=float(f1.std(ddof=1)) if len(f1) > 1 else float("nan"),
                   diff_seed_mean_vs_none=float("nan"), diff_seed_mean_ci_low=float("nan"), diff_seed_mean_ci_high=float("nan"))
        base = groups.get(gkey[:3] + ("none",))
        if gkey[3] != "none" and base:
            common = [s for s in seeds if s in base]
            if common:
                a = _item_mean([by_seed[s] for s in common])
                b = _item_mean([base[s] for s in common])
                x, y = _aligned(a, b, f"{gkey} (mean over seeds {common})", f"{gkey[:3] + ('none',)}")
                d = paired_difference_ci(x, y, n_boot=n_boot, seed=seed)
                row.update(diff_seed_mean_vs_none=d["diff"], diff_seed_mean_ci_low=d["ci_low"],
                           diff_seed_mean_ci_high=d["ci_high"])
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- PLR learning curves

def read_curve(path: str | Path) -> pd.DataFrame:
    raw = _read_csv(path, CURVE_COLUMNS)
    if raw.empty:
        raise ReportError(f"{path}: no rows")
    df = raw[CURVE_COLUMNS].copy()
    for field in ("n_per_class", "draw"):
        df[field] = _numbers(raw, path, field, allow_empty=False, integer=True).astype(int)
    for field in ("accuracy", "macro_f1"):
        df[field] = _numbers(raw, path, field, allow_empty=False)
    df["C"] = _numbers(raw, path, "C")
    keys = df[["dataset", "model"]].drop_duplicates()
    if len(keys) != 1:
        raise ReportError(f"{path}: holds more than one dataset/model {keys.to_dict('records')}")
    dup = df.index[df.duplicated(["n_per_class", "draw"])]
    if len(dup):
        raise ReportError(f"{path}, row {dup[0] + 2}, fields 'n_per_class','draw': "
                          f"({df.at[dup[0], 'n_per_class']}, {df.at[dup[0], 'draw']}) appears twice")
    _check_path(path, _CURVE_PATH, keys.iloc[0].to_dict())
    df["source"] = str(path)
    return df


def zeroshot_column(llm: str) -> str:
    return f"zeroshot_accuracy_{llm}"


def reach_column(llm: str) -> str:
    return f"n_per_class_reaching_{llm}"


def smallest_n_reaching(n_per_class: Sequence[int], accuracy_mean: Sequence[float], target: float):
    """The smallest n per class whose mean accuracy is at least ``target`` (None if none is)."""
    if target is None or not math.isfinite(target):
        return None
    hits = [n for n, a in sorted(zip(n_per_class, accuracy_mean)) if a >= target]
    return int(hits[0]) if hits else None


def plr_table(curve_paths: Sequence[str | Path], zeroshot_paths: Sequence[str | Path] = (), *,
              config_hash: str, model_paths: dict | None = None, seed: int | None = None) -> pd.DataFrame:
    """One row per dataset x embedding model x n per class: mean and standard deviation of
    accuracy and macro-F1 over draws, the median chosen C, and per zero-shot LLM of that
    dataset its accuracy (``zeroshot_accuracy_<llm>``) and the smallest n per class at which
    the PLR mean accuracy reaches it (``n_per_class_reaching_<llm>``; empty if never)."""
    base_columns = ["dataset", "model", "n_per_class", "n_draws", "accuracy_mean", "accuracy_std",
                    "macro_f1_mean", "macro_f1_std", "C_median"]
    zeroshot: dict[str, dict[str, tuple[float, str]]] = {}
    for path in zeroshot_paths:
        m = _read_json(path, ["dataset", "classifier", "method", "condition", "accuracy"])
        if m["condition"] != "none":
            raise ReportError(f"{path}, field 'condition': {m['condition']!r}; the PLR reference is the "
                              "zero-shot accuracy without explanations ('none')")
        zeroshot.setdefault(m["dataset"], {})[m["classifier"]] = (float(m["accuracy"]), str(path))
    llms = list(dict.fromkeys(llm for d in zeroshot.values() for llm in d))
    columns = (base_columns + [c for llm in llms for c in (zeroshot_column(llm), reach_column(llm))]
               + ["config_hash", "model_path", "seed", "source", "zeroshot_sources"])
    if not curve_paths:
        return pd.DataFrame(columns=columns)
    curves = [read_curve(p) for p in curve_paths]
    rows = []
    for curve in curves:
        dataset, model = curve["dataset"].iloc[0], curve["model"].iloc[0]
        agg = (curve.groupby("n_per_class")
               .agg(n_draws=("draw", "nunique"), accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                    macro_f1_mean=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"), C_median=("C", "median"))
               .reset_index().sort_values("n_per_class"))
        refs = zeroshot.get(dataset, {})
        for _, a in agg.iterrows():
            row = dict(dataset=dataset, model=model, **{k: a[k] for k in base_columns[2:]})
            for llm in llms:
                acc = refs.get(llm, (float("nan"), ""))[0]
                row[zeroshot_column(llm)] = acc
                row[reach_column(llm)] = smallest_n_reaching(agg["n_per_class"], agg["accuracy_mean"], acc)
            row.update(config_hash=config_hash, model_path=_model_path(model_paths, model), seed=seed,
                       source=curve["source"].iloc[0], zeroshot_sources=";".join(src for _, src in refs.values()))
            rows.append(row)
    out = pd.DataFrame(rows)
    dup = out[out.duplicated(["dataset", "model", "n_per_class"], keep=False)]
    if len(dup):
        raise ReportError(f"{sorted(set(dup['source']))}: the same dataset/model curve is given twice")
    out = out.sort_values(["dataset", "model", "n_per_class"], kind="stable").reset_index(drop=True)
    out["n_per_class"] = out["n_per_class"].astype(int)
    out["n_draws"] = out["n_draws"].astype(int)
    for llm in llms:
        out[reach_column(llm)] = out[reach_column(llm)].astype("Int64")
    out["seed"] = out["seed"].astype("Int64")
    return out[columns]


def zeroshot_llms(table: pd.DataFrame) -> list[str]:
    return [c[len("zeroshot_accuracy_"):] for c in table.columns if c.startswith("zeroshot_accuracy_")]


def top_phrases(phrase_paths: Sequence[str | Path], top: int = 5) -> pd.DataFrame:
    """The ``top`` phrases per dataset x model x label from ``phrases.csv`` files (by rank)."""
    frames = []
    for path in phrase_paths:
        raw = _read_csv(path, PHRASE_COLUMNS)
        if raw.empty:
            continue
        df = raw[PHRASE_COLUMNS].copy()
        df["rank"] = _numbers(raw, path, "rank", allow_empty=False, integer=True).astype(int)
        df["mean_contribution"] = _numbers(raw, path, "mean_contribution")
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=PHRASE_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    df = df[df["rank"] <= top].sort_values(["dataset", "model", "label", "rank"], kind="stable")
    return df.reset_index(drop=True)


# ----------------------------------------------------------------------------- findings (the answers, in words)

def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def _with_ci(value, low, high, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in (low, high)):
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _verdict(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if low > 0:
        return "helps (interval above 0)"
    if high < 0:
        return "hurts (interval below 0)"
    return "no clear effect (interval includes 0)"


def quality_findings(table: pd.DataFrame) -> list[str]:
    """Per dataset and metric, the best explainer x shots row."""
    out = []
    for dataset, group in table.groupby("dataset", sort=True):
        for m in quality_metrics_in(group):
            if group[m].notna().any():
                best = group.loc[group[m].idxmax()]
                out.append(f"{dataset}: best {METRIC_LABELS.get(m, m)} is {best['explainer']} {int(best['shots'])}-shot "
                           f"(seed {int(best['seed'])}): {_with_ci(best[m], best[m + '_ci_low'], best[m + '_ci_high'])}")
    return out


def classification_findings(table: pd.DataFrame) -> list[str]:
    """Research question 1: does each explanation condition change accuracy against ``none``?"""
    out = []
    summary = table.drop_duplicates(["dataset", "method", "classifier", "condition"])
    for _, r in summary.iterrows():
        if r["condition"] == "none" or not math.isfinite(r["diff_seed_mean_vs_none"]):
            continue
        seeds = "" if r["method"] == "zeroshot" else f", mean over {int(r['n_seeds'])} seed(s)"
        out.append(f"{r['dataset']}, {r['method']} {r['classifier']}: {r['condition']} vs none: accuracy "
                   f"{r['diff_seed_mean_vs_none']:+.3f} [{r['diff_seed_mean_ci_low']:+.3f}, {r['diff_seed_mean_ci_high']:+.3f}]"
                   f" (paired bootstrap over {int(r['n'])} test items{seeds}): "
                   f"{_verdict(r['diff_seed_mean_ci_low'], r['diff_seed_mean_ci_high'])}")
    return out


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
                           f"at n = {int(reach)} per class (mean {at['accuracy_mean']:.3f} ± {_fmt(at['accuracy_std'])} "
                           f"over {int(at['n_draws'])} draws)")
        if not zeroshot_llms(group):
            out.append(f"{dataset}: PLR on {model} embeddings: best mean accuracy {best['accuracy_mean']:.3f} "
                       f"at n = {int(best['n_per_class'])} per class (no zero-shot reference configured)")
    return out


# ----------------------------------------------------------------------------- display tables

def quality_display(table: pd.DataFrame) -> pd.DataFrame:
    metrics = quality_metrics_in(table)
    cols = {"dataset": table["dataset"], "explainer": table["explainer"], "shots": table["shots"],
            "seed": table["seed"], "n": table["n"]}
    for m in metrics:
        cols[METRIC_LABELS.get(m, m)] = [_with_ci(v, lo, hi) for v, lo, hi in
                                         zip(table[m], table[f"{m}_ci_low"], table[f"{m}_ci_high"])]
    cols.update(config_hash=table["config_hash"], model_path=table["model_path"])
    return pd.DataFrame(cols)


def classification_summary_display(table: pd.DataFrame) -> pd.DataFrame:
    s = table.drop_duplicates(["dataset", "method", "classifier", "condition"])
    return pd.DataFrame({
        "dataset": s["dataset"], "method": s["method"], "classifier": s["classifier"], "condition": s["condition"],
        "seeds": s["n_seeds"],
        "accuracy (seed mean [95% CI])": [_with_ci(*v) for v in zip(s["accuracy_seed_mean"], s["accuracy_seed_mean_ci_low"], s["accuracy_seed_mean_ci_high"])],
        "accuracy sd": [_fmt(v) for v in s["accuracy_seed_std"]],
        "macro-F1 (seed mean)": [_fmt(v) for v in s["macro_f1_seed_mean"]],
        "macro-F1 sd": [_fmt(v) for v in s["macro_f1_seed_std"]],
        "Δ accuracy vs none [paired 95% CI]": [_with_ci(*v) for v in zip(s["diff_seed_mean_vs_none"], s["diff_seed_mean_ci_low"], s["diff_seed_mean_ci_high"])],
    })


def classification_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": table["dataset"], "method": table["method"], "classifier": table["classifier"],
        "condition": table["condition"], "seed": [_fmt(s) if not pd.isna(s) else "–" for s in table["seed"]],
        "n": table["n"], "invalid": table["n_invalid"],
        "accuracy [95% CI]": [_with_ci(*v) for v in zip(table["accuracy"], table["accuracy_ci_low"], table["accuracy_ci_high"])],
        "macro-F1 [95% CI]": [_with_ci(*v) for v in zip(table["macro_f1"], table["macro_f1_ci_low"], table["macro_f1_ci_high"])],
        "Δ accuracy vs none [paired 95% CI]": [_with_ci(*v) for v in zip(table["diff_vs_none"], table["diff_ci_low"], table["diff_ci_high"])],
        "config_hash": table["config_hash"], "model_path": table["model_path"],
    })


def plr_display(table: pd.DataFrame) -> pd.DataFrame:
    cols = {"dataset": table["dataset"], "model": table["model"], "n per class": table["n_per_class"],
            "draws": table["n_draws"],
            "accuracy (mean ± sd)": [f"{_fmt(m)} ± {_fmt(s)}" for m, s in zip(table["accuracy_mean"], table["accuracy_std"])],
            "macro-F1 (mean ± sd)": [f"{_fmt(m)} ± {_fmt(s)}" for m, s in zip(table["macro_f1_mean"], table["macro_f1_std"])]}
    for llm in zeroshot_llms(table):
        cols[f"{llm} zero-shot acc."] = [_fmt(v) for v in table[zeroshot_column(llm)]]
        cols[f"n reaching {llm}"] = ["–" if pd.isna(v) else str(int(v)) for v in table[reach_column(llm)]]
    cols.update(config_hash=table["config_hash"], model_path=table["model_path"],
                seed=["–" if pd.isna(s) else str(int(s)) for s in table["seed"]])
    return pd.DataFrame(cols)


# ----------------------------------------------------------------------------- writing

def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); NaN shows as an en dash."""
    if df.empty:
        return "_(no rows)_\n"

    def cell(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        if isinstance(v, (float, np.floating)):
            return _fmt(float(v))
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _atomic_write(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    _atomic_write(path, table.to_csv(index=False, float_format="%.6g"))


_NAME_COLUMNS = ("dataset", "explainer", "model", "classifier", "method", "condition", "config_hash",
                 "model_path", "source", "zeroshot_sources")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a report table back: names stay strings (a model called "NA" is not a missing
    value); only empty cells are missing."""
    head = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, keep_default_na=False, na_values=[""],
                       dtype={c: str for c in _NAME_COLUMNS if c in head})


def write_document(path_md: str | Path, path_html: str | Path | None, title: str, intro: str,
                   findings: list[str], sections: list[tuple[str, pd.DataFrame]]) -> None:
    """The same content as Markdown (for the repository) and HTML (for the Snakemake report)."""
    md = [f"# {title}", "", intro, ""]
    if findings:
        md += ["## Findings", ""] + [f"- {f}" for f in findings] + [""]
    for heading, df in sections:
        md += [f"## {heading}", "", markdown_table(df)]
    _atomic_write(path_md, "\n".join(md))
    if path_html is None:
        return
    style = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:0.85em}"
             "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{style}</style></head><body>", f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
    if findings:
        parts += ["<h2>Findings</h2><ul>"] + [f"<li>{html.escape(f)}</li>" for f in findings] + ["</ul>"]
    for heading, df in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(df.to_html(index=False, na_rep="–", float_format=lambda v: _fmt(v)) if not df.empty else "<p>(no rows)</p>")
    parts.append("</body></html>")
    _atomic_write(path_html, "\n".join(parts))


QUALITY_INTRO = ("Each LLM-written explanation of a test example is scored against all human reference "
                 "explanations. Values are corpus-level scores with bootstrap 95% intervals over test examples; "
                 "each row names its source run (config hash, explainer model path, seed).")
CLASSIFICATION_INTRO = ("Classifiers with no explanation (none), the human explanation (human) or an LLM-written "
                        "explanation (llm-<explainer>-<k>shot) beside the input. Δ accuracy vs none is the paired "
                        "difference on the same test items with a bootstrap 95% interval: above 0 means the "
                        "explanation helped.")
PLR_INTRO = ("Penalised logistic regression on frozen embeddings, trained on n examples per class (mean ± sd "
             "over random draws), against each LLM's zero-shot next-token accuracy on the same test split. "
             "'n reaching' is the smallest n per class whose mean PLR accuracy is at least the zero-shot accuracy.")


def write_quality(table: pd.DataFrame, csv: str | Path, md: str | Path, html_path: str | Path | None = None) -> None:
    write_csv(table, csv)
    write_document(md, html_path, "Explanation quality", QUALITY_INTRO, quality_findings(table),
                   [("Scores by explainer x shots x seed", quality_display(table))])


def write_classification(table: pd.DataFrame, csv: str | Path, md: str | Path, html_path: str | Path | None = None) -> None:
    write_csv(table, csv)
    write_document(md, html_path, "Classification by explanation condition", CLASSIFICATION_INTRO,
                   classification_findings(table),
                   [("Over seeds", classification_summary_display(table)), ("Per run", classification_display(table))])


def write_plr(table: pd.DataFrame, csv: str | Path, md: str | Path, html_path: str | Path | None = None,
              phrases: pd.DataFrame | None = None) -> None:
    write_csv(table, csv)
    sections = [("Learning curves", plr_display(table))]
    if phrases is not None and not phrases.empty:
        sections.append(("Top phrases of the PLR (largest mean contribution to each label)",
                         phrases[["dataset", "model", "label", "rank", "phrase", "mean_contribution", "count"]]))
    write_document(md, html_path, "PLR learning curves", PLR_INTRO, plr_findings(table), sections)
