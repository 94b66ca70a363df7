"""Study 1, classification by explanation condition: fine-tuned PLMs and zero-shot LLMs, one row
per dataset x method x classifier x condition x fold x seed (from every run's ``metrics.json``
and ``predictions.csv``). Rule ``classification_table``.

Macro-F1 is the headline metric (as in Dhaini et al.), accuracy beside it. Per run: both with
their 95% intervals, and the paired difference from condition ``none`` on the same test items
(same fold, same seed). Per group over its folds and seeds: the mean and standard deviation of
both, and the paired difference from ``none`` pooled over the folds (every fold's test items
together: the whole dataset once, for each seed; the statistic is the mean over seeds) with a
paired bootstrap interval, and in how many folds the condition beat ``none``. Every row names
its source run: the config hash, the model path, the seed and the ``metrics.json``.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..files import read_run
from ..provenance import config_hash
from ..stats import macro_f1_codes, paired_score_difference
from .render import MISSING, Document, fmt, with_ci, write_report

log = logging.getLogger("explainbench.report")

GROUP_KEY = ["dataset", "method", "classifier", "condition"]
RUN_KEY = GROUP_KEY + ["fold", "seed"]
DIFF_COLUMNS = ["diff_macro_f1_vs_none", "diff_macro_f1_ci_low", "diff_macro_f1_ci_high",
                "diff_accuracy_vs_none", "diff_accuracy_ci_low", "diff_accuracy_ci_high"]
SUMMARY_COLUMNS = ["n_folds", "n_seeds", "n_pooled", "macro_f1_mean", "macro_f1_sd", "accuracy_mean", "accuracy_sd",
                   "pooled_diff_macro_f1_vs_none", "pooled_diff_macro_f1_ci_low", "pooled_diff_macro_f1_ci_high",
                   "pooled_diff_accuracy_vs_none", "pooled_diff_accuracy_ci_low", "pooled_diff_accuracy_ci_high",
                   "folds_better_than_none"]
COLUMNS = (RUN_KEY + ["n", "n_invalid", "macro_f1", "macro_f1_ci_low", "macro_f1_ci_high", "accuracy",
                      "accuracy_ci_low", "accuracy_ci_high", "weighted_f1"] + DIFF_COLUMNS
           + SUMMARY_COLUMNS + ["config_hash", "model_path", "source"])
CLASSIFICATION_INTRO = ("Classifiers with no explanation (none), the human explanation (human) or an LLM-written "
                        "explanation (llm-<explainer>-<k>shot; -masked: its label words removed) beside the input. "
                        "Macro-F1 is the headline metric, accuracy beside it. Δ vs none is the paired difference on "
                        "the same test items with a bootstrap 95% interval, per fold and pooled over folds: above 0 "
                        "means the explanation helped.")

_NAN = float("nan")


def condition_rank(condition: str) -> tuple[int, str]:
    """Sort key of conditions: none, human, then the LLM conditions by name."""
    return ({"none": 0, "human": 1}.get(condition, 2), condition)


def _seed_key(seed) -> int:
    return -1 if seed is None else seed


# ----------------------------------------------------------------------------- reading and pairing

def _read_runs(runs: Sequence[tuple[str | Path, str | Path]]) -> dict[tuple, tuple[dict, pd.DataFrame, str]]:
    """Each run (metrics.json, predictions.csv) read and checked, by :data:`RUN_KEY`."""
    out = {}
    for metrics_path, predictions in runs:
        m, preds = read_run(metrics_path, predictions)
        key = tuple(m[k] for k in RUN_KEY)
        if key in out:
            raise DataError(f"{metrics_path}: the same run {dict(zip(RUN_KEY, key))} is also in {out[key][2]}")
        out[key] = (m, preds, str(metrics_path))
    return out


def _labels(m: dict, preds: pd.DataFrame) -> list[str]:
    return list(m.get("labels") or sorted(set(preds["gold"])))


def _codes(preds: pd.DataFrame, labels: list[str], order: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(gold, pred) of ``preds`` in item ``order``, coded as label indices (-1: no valid answer)."""
    index = {label: i for i, label in enumerate(labels)}
    by_id = preds.set_index("id")
    gold = np.array([index.get(g, -2) for g in by_id.loc[order, "gold"]], dtype=int)
    pred = np.array([index.get(p, -1) for p in by_id.loc[order, "pred"]], dtype=int)
    return gold, pred


def _aligned(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(gold, pred_a, pred_b, labels) of two runs on the same test ids, in one order."""
    (ma, pa, src_a), (_, pb, src_b) = a, b
    ids_a, ids_b = set(pa["id"]), set(pb["id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        raise DataError(f"paired comparison needs the same test ids: {len(only_a)} only in {src_a} "
                        f"(e.g. {only_a[:3]}), {len(only_b)} only in {src_b} (e.g. {only_b[:3]})")
    labels, order = _labels(ma, pa), sorted(ids_a)
    gold, x = _codes(pa, labels, order)
    gold_b, y = _codes(pb, labels, order)
    if not np.array_equal(gold, gold_b):
        raise DataError(f"{src_a} and {src_b}: the same test ids have different gold labels")
    return gold, x, y, labels


def _diff_fields(result: dict, prefix: str) -> dict:
    out = {}
    for metric in ("macro_f1", "accuracy"):
        r = result[metric]
        out.update({f"{prefix}diff_{metric}_vs_none": r["diff"], f"{prefix}diff_{metric}_ci_low": r["ci_low"],
                    f"{prefix}diff_{metric}_ci_high": r["ci_high"]})
    return out


# ----------------------------------------------------------------------------- the table

def _run_row(key: tuple, runs: dict, bootstrap: int, seed: int) -> dict:
    m, preds, src = runs[key]
    (lo, hi), (f_lo, f_hi) = m["accuracy_ci"], m["macro_f1_ci"]
    row = dict(zip(RUN_KEY, key), n=int(m["n"]), n_invalid=int(m["n_invalid"]),
               macro_f1=float(m["macro_f1"]), macro_f1_ci_low=f_lo, macro_f1_ci_high=f_hi,
               accuracy=float(m["accuracy"]), accuracy_ci_low=lo, accuracy_ci_high=hi,
               weighted_f1=float(m.get("weighted_f1", _NAN)), **dict.fromkeys(DIFF_COLUMNS, _NAN))
    base = runs.get(key[:3] + ("none",) + key[4:])
    if key[3] != "none" and base is not None:
        gold, x, y, labels = _aligned(runs[key], base)
        row.update(_diff_fields(paired_score_difference(gold, x, y, len(labels), bootstrap, seed), ""))
    elif key[3] != "none":
        log.warning("%s: no run of condition 'none' with the same dataset/method/classifier/fold/seed; "
                    "no difference from none", src)
    return row


def _sd(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else _NAN


def _pooled(group: dict, base: dict, bootstrap: int, seed: int) -> tuple[dict, int, int] | None:
    """The pooled paired difference of a group from its ``none`` group: every (fold, seed) both
    have, the folds' items side by side (one row per seed common to all those folds); also the
    number of items and of folds in which the seed-mean macro-F1 difference is above 0."""
    common = sorted(k for k in group if k in base)
    folds = sorted({f for f, _ in common})
    seeds = [s for s in sorted({s for _, s in common}, key=_seed_key) if all((f, s) in group for f in folds)]
    seeds = [s for s in seeds if all((f, s) in base for f in folds)]
    if not seeds:
        return None
    gold_parts, a_parts, b_parts, better = [], [], [], 0
    n_labels = 0
    for f in folds:
        pairs = [_aligned(group[(f, s)], base[(f, s)]) for s in seeds]
        gold, labels = pairs[0][0], pairs[0][3]
        n_labels = len(labels)
        gold_parts.append(gold)
        a_parts.append(np.vstack([p[1] for p in pairs]))
        b_parts.append(np.vstack([p[2] for p in pairs]))
        diffs = [macro_f1_codes(gold, p[1], n_labels) - macro_f1_codes(gold, p[2], n_labels) for p in pairs]
        better += int(np.mean(diffs) > 0)
    gold = np.concatenate(gold_parts)
    result = paired_score_difference(gold, np.hstack(a_parts), np.hstack(b_parts), n_labels, bootstrap, seed)
    return result, len(gold), better


def fold_summary(runs: dict, bootstrap: int, seed: int) -> pd.DataFrame:
    """Per dataset x method x classifier x condition over its folds and seeds (:data:`SUMMARY_COLUMNS`)."""
    groups: dict[tuple, dict] = {}
    for key, run in runs.items():
        groups.setdefault(key[:4], {})[key[4:]] = run
    rows = []
    for gkey, by_run in groups.items():
        f1 = np.array([r[0]["macro_f1"] for r in by_run.values()], float)
        acc = np.array([r[0]["accuracy"] for r in by_run.values()], float)
        row = dict(zip(GROUP_KEY, gkey), n_folds=len({f for f, _ in by_run}), n_seeds=len({s for _, s in by_run}),
                   n_pooled=_NAN, macro_f1_mean=float(f1.mean()), macro_f1_sd=_sd(f1),
                   accuracy_mean=float(acc.mean()), accuracy_sd=_sd(acc), folds_better_than_none=_NAN,
                   **{c: _NAN for c in SUMMARY_COLUMNS if c.startswith("pooled_")})
        base = groups.get(gkey[:3] + ("none",))
        pooled = _pooled(by_run, base, bootstrap, seed) if gkey[3] != "none" and base else None
        if pooled:
            result, n_items, better = pooled
            row.update(_diff_fields(result, "pooled_"), n_pooled=n_items, folds_better_than_none=better)
        rows.append(row)
    return pd.DataFrame(rows)


def classification_table(runs: Sequence[tuple[str | Path, str | Path]], *, config_hash: str,
                         bootstrap: int, seed: int = 0) -> pd.DataFrame:
    """One row per dataset x method x classifier x condition x fold x seed.

    ``runs`` are the (metrics.json, predictions.csv) pairs of the runs. Per run: macro-F1 and
    accuracy with their 95% intervals, weighted F1, n, n_invalid (read from metrics.json), and
    the paired difference of macro-F1 and of accuracy from condition ``none`` with the same
    dataset, method, classifier, fold and seed, with paired bootstrap intervals over the same
    test items (from predictions.csv). Per group over its folds and seeds (repeated on each of
    its rows): :data:`SUMMARY_COLUMNS`.
    """
    by_key = _read_runs(runs)
    order = sorted(by_key, key=lambda k: (k[0], k[1], k[2], condition_rank(k[3]), k[4], _seed_key(k[5])))
    rows = [dict(_run_row(key, by_key, bootstrap, seed), config_hash=config_hash,
                 model_path=by_key[key][0]["model_path"], source=by_key[key][2]) for key in order]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    out = out.merge(fold_summary(by_key, bootstrap, seed), on=GROUP_KEY, how="left", sort=False)
    return out[COLUMNS]


# ----------------------------------------------------------------------------- findings and display

def _verdict(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if low > 0:
        return "helps (interval above 0)"
    if high < 0:
        return "hurts (interval below 0)"
    return "no clear effect (interval includes 0)"


def classification_findings(table: pd.DataFrame) -> list[str]:
    """Research question 1: does each explanation condition change macro-F1 against ``none``?"""
    out = []
    for _, r in table.drop_duplicates(GROUP_KEY).iterrows():
        d = r["pooled_diff_macro_f1_vs_none"]
        if r["condition"] == "none" or not math.isfinite(d):
            continue
        seeds = "" if r["method"] == "zeroshot" else f" x {int(r['n_seeds'])} seed(s)"
        out.append(f"{r['dataset']}, {r['method']} {r['classifier']}: {r['condition']} vs none: macro-F1 "
                   f"{d:+.3f} [{r['pooled_diff_macro_f1_ci_low']:+.3f}, {r['pooled_diff_macro_f1_ci_high']:+.3f}] "
                   f"(paired bootstrap over {int(r['n_pooled'])} test items pooled over {int(r['n_folds'])} fold(s)"
                   f"{seeds}; better in {int(r['folds_better_than_none'])} of {int(r['n_folds'])} fold(s); accuracy "
                   f"{r['pooled_diff_accuracy_vs_none']:+.3f}): "
                   f"{_verdict(r['pooled_diff_macro_f1_ci_low'], r['pooled_diff_macro_f1_ci_high'])}")
    return out


def _intervals(table: pd.DataFrame, value: str, low: str, high: str) -> list[str]:
    return [with_ci(*v) for v in zip(table[value], table[low], table[high])]


def _mean_sd(means, sds) -> list[str]:
    return [MISSING if pd.isna(m) else fmt(m) if pd.isna(s) else f"{fmt(m)} ± {fmt(s)}" for m, s in zip(means, sds)]


def classification_summary_display(table: pd.DataFrame) -> pd.DataFrame:
    s = table.drop_duplicates(GROUP_KEY)
    return pd.DataFrame({
        "dataset": s["dataset"], "method": s["method"], "classifier": s["classifier"], "condition": s["condition"],
        "folds": s["n_folds"], "seeds": s["n_seeds"],
        "macro-F1 (mean ± sd)": _mean_sd(s["macro_f1_mean"], s["macro_f1_sd"]),
        "accuracy (mean ± sd)": _mean_sd(s["accuracy_mean"], s["accuracy_sd"]),
        "Δ macro-F1 vs none, pooled [paired 95% CI]": _intervals(s, "pooled_diff_macro_f1_vs_none",
                                                                 "pooled_diff_macro_f1_ci_low",
                                                                 "pooled_diff_macro_f1_ci_high"),
        "Δ accuracy vs none, pooled [paired 95% CI]": _intervals(s, "pooled_diff_accuracy_vs_none",
                                                                 "pooled_diff_accuracy_ci_low",
                                                                 "pooled_diff_accuracy_ci_high"),
        "folds better": [MISSING if pd.isna(b) else f"{int(b)}/{int(n)}"
                         for b, n in zip(s["folds_better_than_none"], s["n_folds"])],
    })


def classification_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": table["dataset"], "method": table["method"], "classifier": table["classifier"],
        "condition": table["condition"], "fold": table["fold"],
        "seed": [fmt(s) if not pd.isna(s) else "–" for s in table["seed"]],
        "n": table["n"], "invalid": table["n_invalid"],
        "macro-F1 [95% CI]": _intervals(table, "macro_f1", "macro_f1_ci_low", "macro_f1_ci_high"),
        "accuracy [95% CI]": _intervals(table, "accuracy", "accuracy_ci_low", "accuracy_ci_high"),
        "Δ macro-F1 vs none [paired 95% CI]": _intervals(table, "diff_macro_f1_vs_none", "diff_macro_f1_ci_low",
                                                         "diff_macro_f1_ci_high"),
        "Δ accuracy vs none [paired 95% CI]": _intervals(table, "diff_accuracy_vs_none", "diff_accuracy_ci_low",
                                                         "diff_accuracy_ci_high"),
        "config_hash": table["config_hash"], "model_path": table["model_path"],
    })


def write_classification(table: pd.DataFrame, csv: str | Path, md: str | Path,
                         html_path: str | Path | None = None) -> None:
    document = Document("Classification by explanation condition", CLASSIFICATION_INTRO,
                        classification_findings(table),
                        [("Over folds and seeds", classification_summary_display(table)),
                         ("Per run", classification_display(table))])
    write_report(table, document, csv, md, html_path)


def run(job) -> pd.DataFrame:
    """Rule ``classification_table``: every fine-tuning and zero-shot run -> the classification table.

    ``predictions`` lists each run's predictions.csv in the order of ``finetune`` + ``zeroshot``."""
    metrics = list(job.input["finetune"]) + list(job.input["zeroshot"])
    predictions = list(job.input["predictions"])
    if len(predictions) != len(metrics):
        raise DataError(f"rule classification_table: {len(metrics)} metrics.json but {len(predictions)} predictions.csv")
    table = classification_table(list(zip(metrics, predictions)), config_hash=config_hash(job.config),
                                 bootstrap=job.settings["bootstrap"])
    write_classification(table, job.output["csv"], job.output["md"], job.output["html"])
    log.info("classification: %d rows from %d runs -> %s", len(table), len(metrics), job.output["csv"])
    return table
