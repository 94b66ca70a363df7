"""Study 1, classification by explanation condition: fine-tuned PLMs and zero-shot LLMs, one row
per dataset x method x classifier x condition x seed (from every run's ``metrics.json`` and
``predictions.csv``). Rule ``classification_table``.

Per run: accuracy, macro-F1 and their 95% intervals, and the paired difference from condition
``none`` over the same test items. Per group over seeds: mean and standard deviation, and the
seed-mean difference from ``none`` with a paired bootstrap interval. Every row names its source
run: the config hash, the model path, the seed and the ``metrics.json``.
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
from ..stats import mean_ci, paired_difference_ci
from .render import Document, fmt, with_ci, write_report

log = logging.getLogger("explainbench.report")

GROUP_KEY = ["dataset", "method", "classifier", "condition"]
SEED_SUMMARY_COLUMNS = ["n_seeds", "accuracy_seed_mean", "accuracy_seed_std", "accuracy_seed_mean_ci_low",
                        "accuracy_seed_mean_ci_high", "macro_f1_seed_mean", "macro_f1_seed_std",
                        "diff_seed_mean_vs_none", "diff_seed_mean_ci_low", "diff_seed_mean_ci_high"]
COLUMNS = (GROUP_KEY + ["seed", "n", "n_invalid", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1",
                        "macro_f1_ci_low", "macro_f1_ci_high", "diff_vs_none", "diff_ci_low", "diff_ci_high"]
           + SEED_SUMMARY_COLUMNS + ["config_hash", "model_path", "source"])
CLASSIFICATION_INTRO = ("Classifiers with no explanation (none), the human explanation (human) or an LLM-written "
                        "explanation (llm-<explainer>-<k>shot) beside the input. Δ accuracy vs none is the paired "
                        "difference on the same test items with a bootstrap 95% interval: above 0 means the "
                        "explanation helped.")

_NAN = float("nan")


def condition_rank(condition: str) -> tuple[int, str]:
    """Sort key of conditions: none, human, then the LLM conditions by name."""
    return ({"none": 0, "human": 1}.get(condition, 2), condition)


# ----------------------------------------------------------------------------- paired differences

def _aligned(a: pd.DataFrame, b: pd.DataFrame, name_a, name_b) -> tuple[np.ndarray, np.ndarray]:
    """Per-item correctness of two runs on the same test ids, in one order."""
    ids_a, ids_b = set(a["id"]), set(b["id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        raise DataError(f"paired comparison needs the same test ids: {len(only_a)} only in {name_a} "
                        f"(e.g. {only_a[:3]}), {len(only_b)} only in {name_b} (e.g. {only_b[:3]})")
    sa, sb = a.set_index("id")["correct"], b.set_index("id")["correct"]
    order = sorted(ids_a)
    return sa.loc[order].to_numpy(float), sb.loc[order].to_numpy(float)


def _item_mean(runs: list[tuple[dict, pd.DataFrame, str]]) -> pd.DataFrame:
    """Per test item, the mean correctness over the runs (seeds) given; ids must agree."""
    base = runs[0][1]
    cols = [_aligned(preds, base, src, runs[0][2])[0] for _, preds, src in runs]
    return pd.DataFrame({"id": sorted(set(base["id"])), "correct": np.mean(cols, axis=0)})


def _difference(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], bootstrap: int, seed: int) -> dict:
    """Mean difference in correctness of two runs over the same test items, paired bootstrap interval."""
    x, y = _aligned(a, b, *names)
    return paired_difference_ci(x, y, bootstrap=bootstrap, seed=seed)


# ----------------------------------------------------------------------------- the table

def _read_runs(runs: Sequence[tuple[str | Path, str | Path]]) -> dict[tuple, tuple[dict, pd.DataFrame, str]]:
    """Each run (metrics.json, predictions.csv) read and checked, by (dataset, method, classifier, condition, seed)."""
    out = {}
    for metrics_path, predictions in runs:
        m, preds = read_run(metrics_path, predictions)
        key = (m["dataset"], m["method"], m["classifier"], m["condition"], m["seed"])
        if key in out:
            raise DataError(f"{metrics_path}: the same run {dict(zip(GROUP_KEY + ['seed'], key))} is also in {out[key][2]}")
        out[key] = (m, preds, str(metrics_path))
    return out


def _run_row(key: tuple, runs: dict, bootstrap: int, seed: int) -> dict:
    m, preds, src = runs[key]
    (lo, hi), (f_lo, f_hi) = m["accuracy_ci"], m["macro_f1_ci"]
    row = dict(dataset=m["dataset"], method=m["method"], classifier=m["classifier"], condition=m["condition"],
               seed=m["seed"], n=int(m["n"]), n_invalid=int(m["n_invalid"]),
               accuracy=float(m["accuracy"]), accuracy_ci_low=lo, accuracy_ci_high=hi,
               macro_f1=float(m["macro_f1"]), macro_f1_ci_low=f_lo, macro_f1_ci_high=f_hi,
               diff_vs_none=_NAN, diff_ci_low=_NAN, diff_ci_high=_NAN)
    base = runs.get(key[:3] + ("none", key[4]))
    if key[3] != "none" and base is not None:
        d = _difference(preds, base[1], (src, base[2]), bootstrap, seed)
        row.update(diff_vs_none=d["diff"], diff_ci_low=d["ci_low"], diff_ci_high=d["ci_high"])
    elif key[3] != "none":
        log.warning("%s: no run of condition 'none' with the same dataset/method/classifier/seed; "
                    "no difference from none", src)
    return row


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else _NAN


def seed_summary(runs: dict, bootstrap: int, seed: int) -> pd.DataFrame:
    """Per dataset x method x classifier x condition over its seeds (:data:`SEED_SUMMARY_COLUMNS`)."""
    groups: dict[tuple, dict] = {}
    for key, run in runs.items():
        groups.setdefault(key[:4], {})[key[4]] = run
    rows = []
    for gkey, by_seed in groups.items():
        seeds = sorted(by_seed, key=lambda s: -1 if s is None else s)
        acc = np.array([by_seed[s][0]["accuracy"] for s in seeds], float)
        f1 = np.array([by_seed[s][0]["macro_f1"] for s in seeds], float)
        items = _item_mean([by_seed[s] for s in seeds])
        ci = mean_ci(items["correct"].to_numpy(), bootstrap=bootstrap, seed=seed)
        row = dict(zip(GROUP_KEY, gkey), n_seeds=len(seeds),
                   accuracy_seed_mean=float(acc.mean()), accuracy_seed_std=_std(acc),
                   accuracy_seed_mean_ci_low=ci["ci_low"], accuracy_seed_mean_ci_high=ci["ci_high"],
                   macro_f1_seed_mean=float(f1.mean()), macro_f1_seed_std=_std(f1),
                   diff_seed_mean_vs_none=_NAN, diff_seed_mean_ci_low=_NAN, diff_seed_mean_ci_high=_NAN)
        base = groups.get(gkey[:3] + ("none",))
        common = [s for s in seeds if s in base] if gkey[3] != "none" and base else []
        if common:
            names = (f"{gkey} (mean over seeds {common})", f"{gkey[:3] + ('none',)}")
            d = _difference(_item_mean([by_seed[s] for s in common]), _item_mean([base[s] for s in common]),
                            names, bootstrap, seed)
            row.update(diff_seed_mean_vs_none=d["diff"], diff_seed_mean_ci_low=d["ci_low"],
                       diff_seed_mean_ci_high=d["ci_high"])
        rows.append(row)
    return pd.DataFrame(rows)


def classification_table(runs: Sequence[tuple[str | Path, str | Path]], *, config_hash: str,
                         bootstrap: int, seed: int = 0) -> pd.DataFrame:
    """One row per dataset x method x classifier x condition x seed.

    ``runs`` are the (metrics.json, predictions.csv) pairs of the runs.
    Per run: accuracy, macro-F1 and their 95% intervals, n, n_invalid (read from metrics.json),
    and ``diff_vs_none`` = accuracy minus the accuracy of condition ``none`` with the same
    dataset, method, classifier and seed, with a paired bootstrap interval over the same test
    items (from predictions.csv). Per group over seeds (repeated on each of its rows):
    ``n_seeds``, mean and standard deviation of accuracy and macro-F1, a bootstrap interval of
    the seed-mean accuracy over test items, and the seed-mean difference from ``none`` with a
    paired bootstrap interval.
    """
    by_key = _read_runs(runs)
    order = sorted(by_key, key=lambda k: (k[0], k[1], k[2], condition_rank(k[3]), -1 if k[4] is None else k[4]))
    rows = [dict(_run_row(key, by_key, bootstrap, seed), config_hash=config_hash,
                 model_path=by_key[key][0]["model_path"], source=by_key[key][2]) for key in order]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame(rows)
    out["seed"] = out["seed"].astype("Int64")
    out = out.merge(seed_summary(by_key, bootstrap, seed), on=GROUP_KEY, how="left", sort=False)
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
    """Research question 1: does each explanation condition change accuracy against ``none``?"""
    out = []
    for _, r in table.drop_duplicates(GROUP_KEY).iterrows():
        if r["condition"] == "none" or not math.isfinite(r["diff_seed_mean_vs_none"]):
            continue
        seeds = "" if r["method"] == "zeroshot" else f", mean over {int(r['n_seeds'])} seed(s)"
        out.append(f"{r['dataset']}, {r['method']} {r['classifier']}: {r['condition']} vs none: accuracy "
                   f"{r['diff_seed_mean_vs_none']:+.3f} [{r['diff_seed_mean_ci_low']:+.3f}, {r['diff_seed_mean_ci_high']:+.3f}]"
                   f" (paired bootstrap over {int(r['n'])} test items{seeds}): "
                   f"{_verdict(r['diff_seed_mean_ci_low'], r['diff_seed_mean_ci_high'])}")
    return out


def _intervals(table: pd.DataFrame, value: str, low: str, high: str) -> list[str]:
    return [with_ci(*v) for v in zip(table[value], table[low], table[high])]


def classification_summary_display(table: pd.DataFrame) -> pd.DataFrame:
    s = table.drop_duplicates(GROUP_KEY)
    return pd.DataFrame({
        "dataset": s["dataset"], "method": s["method"], "classifier": s["classifier"], "condition": s["condition"],
        "seeds": s["n_seeds"],
        "accuracy (seed mean [95% CI])": _intervals(s, "accuracy_seed_mean", "accuracy_seed_mean_ci_low",
                                                    "accuracy_seed_mean_ci_high"),
        "accuracy sd": [fmt(v) for v in s["accuracy_seed_std"]],
        "macro-F1 (seed mean)": [fmt(v) for v in s["macro_f1_seed_mean"]],
        "macro-F1 sd": [fmt(v) for v in s["macro_f1_seed_std"]],
        "Δ accuracy vs none [paired 95% CI]": _intervals(s, "diff_seed_mean_vs_none", "diff_seed_mean_ci_low",
                                                         "diff_seed_mean_ci_high"),
    })


def classification_display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": table["dataset"], "method": table["method"], "classifier": table["classifier"],
        "condition": table["condition"], "seed": [fmt(s) if not pd.isna(s) else "–" for s in table["seed"]],
        "n": table["n"], "invalid": table["n_invalid"],
        "accuracy [95% CI]": _intervals(table, "accuracy", "accuracy_ci_low", "accuracy_ci_high"),
        "macro-F1 [95% CI]": _intervals(table, "macro_f1", "macro_f1_ci_low", "macro_f1_ci_high"),
        "Δ accuracy vs none [paired 95% CI]": _intervals(table, "diff_vs_none", "diff_ci_low", "diff_ci_high"),
        "config_hash": table["config_hash"], "model_path": table["model_path"],
    })


def write_classification(table: pd.DataFrame, csv: str | Path, md: str | Path,
                         html_path: str | Path | None = None) -> None:
    document = Document("Classification by explanation condition", CLASSIFICATION_INTRO,
                        classification_findings(table),
                        [("Over seeds", classification_summary_display(table)), ("Per run", classification_display(table))])
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
