"""Shared statistics: bootstrap intervals and classification scores.

One implementation serves every stage (explanation quality, fine-tuning, zero-shot, PLR).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n_items: int, bootstrap: int,
                 seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``bootstrap`` resamples of ``range(n_items)``."""
    if n_items == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(bootstrap)], dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


def mean_ci(values: Sequence[float], bootstrap: int, seed: int = 0) -> dict[str, float]:
    """Mean of per-item values with its bootstrap 95% interval."""
    arr = np.asarray(values, dtype=float)
    lo, hi = bootstrap_ci(lambda idx: float(np.nanmean(arr[idx])), len(arr), bootstrap, seed)
    return {"mean": float(np.nanmean(arr)) if arr.size else float("nan"), "ci_low": lo, "ci_high": hi}


def classification_scores(y_true: Sequence[str], y_pred: Sequence[str | None], labels: Sequence[str],
                          bootstrap: int, seed: int = 0) -> dict:
    """Accuracy, macro-F1, per-class F1 and the confusion matrix, with bootstrap 95% intervals.

    A prediction that is None (or not among ``labels``) counts as wrong and is reported in
    ``n_invalid``; it is never dropped.
    """
    labels = list(labels)
    invalid = "<invalid>"
    true = np.array(list(y_true), dtype=object)
    pred = np.array([p if p in labels else invalid for p in y_pred], dtype=object)
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} gold labels but {len(pred)} predictions")
    correct = (true == pred).astype(float)

    def macro_f1(idx: np.ndarray) -> float:
        return float(f1_score(true[idx], pred[idx], labels=labels, average="macro", zero_division=0))

    acc_lo, acc_hi = bootstrap_ci(lambda idx: float(correct[idx].mean()), len(true), bootstrap, seed)
    f1_lo, f1_hi = bootstrap_ci(macro_f1, len(true), bootstrap, seed)
    per_class = f1_score(true, pred, labels=labels, average=None, zero_division=0) if len(true) else np.zeros(len(labels))
    counts = np.array([(true == label).sum() for label in labels], dtype=float)
    cm = confusion_matrix(true, pred, labels=labels + [invalid]) if len(true) else np.zeros((len(labels) + 1,) * 2)
    return {
        "n": int(len(true)),
        "n_invalid": int((pred == invalid).sum()),
        "accuracy": float(correct.mean()) if len(true) else float("nan"),
        "accuracy_ci": [acc_lo, acc_hi],
        "macro_f1": macro_f1(np.arange(len(true))) if len(true) else float("nan"),
        "macro_f1_ci": [f1_lo, f1_hi],
        # beside the headline macro-F1, as Dhaini et al. report them: support-weighted F1 and
        # micro-F1 over the labels (an invalid answer is a false negative of its gold label)
        "weighted_f1": float(per_class @ counts / counts.sum()) if counts.sum() else float("nan"),
        "micro_f1": float(f1_score(true, pred, labels=labels, average="micro", zero_division=0)) if len(true)
        else float("nan"),
        "per_class_f1": {label: float(v) for label, v in zip(labels, per_class)},
        "labels": labels,
        # rows: gold label, columns: predicted label (+ "<invalid>"); the gold row for <invalid> is dropped
        "confusion": np.asarray(cm)[: len(labels)].astype(int).tolist(),
    }


def paired_difference_ci(correct_a: Sequence[float], correct_b: Sequence[float], bootstrap: int,
                         seed: int = 0) -> dict[str, float]:
    """Mean of a - b over the same test items, with a paired bootstrap 95% interval."""
    a, b = np.asarray(correct_a, float), np.asarray(correct_b, float)
    if a.shape != b.shape:
        raise ValueError("paired difference needs the same test items on both sides")
    diff = a - b
    lo, hi = bootstrap_ci(lambda idx: float(diff[idx].mean()), len(diff), bootstrap, seed)
    return {"diff": float(diff.mean()) if diff.size else float("nan"), "ci_low": lo, "ci_high": hi}


def macro_f1_codes(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> float:
    """Macro-F1 of integer-coded labels (``pred`` -1: no valid answer), as scikit-learn's
    ``f1_score(average="macro", labels=all labels, zero_division=0)``, fast enough to bootstrap."""
    gold_counts = np.bincount(gold, minlength=n_labels)
    pred_counts = np.bincount(pred[pred >= 0], minlength=n_labels)
    hits = np.bincount(gold[gold == pred], minlength=n_labels)
    denom = gold_counts + pred_counts
    return float(np.mean(np.where(denom > 0, 2.0 * hits / np.maximum(denom, 1), 0.0)))


def paired_score_difference(gold: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_labels: int,
                            bootstrap: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Macro-F1 and accuracy of ``a`` minus ``b`` on the same test items, with paired bootstrap
    95% intervals (items resampled, both sides together).

    ``gold`` holds the items' integer labels; ``pred_a`` and ``pred_b`` are (replicates, items)
    integer predictions (-1: invalid), one row per seed: each statistic is the mean over the
    replicates of the per-replicate difference. Items may come from several folds (pooled).
    """
    gold = np.asarray(gold, dtype=int)
    a, b = np.atleast_2d(np.asarray(pred_a, dtype=int)), np.atleast_2d(np.asarray(pred_b, dtype=int))
    if a.shape != b.shape or a.shape[1] != len(gold):
        raise ValueError(f"paired difference needs the same test items on both sides: {a.shape}, {b.shape}, "
                         f"{len(gold)} gold labels")

    def f1_diff(idx: np.ndarray) -> float:
        return float(np.mean([macro_f1_codes(gold[idx], a[r, idx], n_labels)
                              - macro_f1_codes(gold[idx], b[r, idx], n_labels) for r in range(len(a))]))

    def acc_diff(idx: np.ndarray) -> float:
        return float(((a[:, idx] == gold[idx]).mean(axis=1) - (b[:, idx] == gold[idx]).mean(axis=1)).mean())

    out = {}
    everything = np.arange(len(gold))
    for name, statistic in (("macro_f1", f1_diff), ("accuracy", acc_diff)):
        lo, hi = bootstrap_ci(statistic, len(gold), bootstrap, seed)
        out[name] = {"diff": statistic(everything) if len(gold) else float("nan"), "ci_low": lo, "ci_high": hi}
    return out
