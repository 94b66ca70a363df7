"""The two outputs of every classifier run (fine-tuned or zero-shot), per the file contract.

``results/<method>/.../predictions.csv``: ``id,gold,pred,correct`` (+ ``score_<label>``);
``metrics.json``: dataset, classifier, method, condition, seed, model_path and the scores
of :func:`explainbench.stats.classification_scores` (bootstrap intervals over the test set).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..stats import classification_scores


def predictions_frame(records: list[dict], preds: Sequence[str | None], labels: Sequence[str],
                      scores: np.ndarray | None = None):
    """The predictions.csv table: id, gold, pred, correct (+ score_<label>)."""
    import pandas as pd

    frame = pd.DataFrame({"id": [r["id"] for r in records], "gold": [r["label"] for r in records],
                          "pred": ["" if p is None else p for p in preds]})
    frame["correct"] = [int(p is not None and p == r["label"]) for p, r in zip(preds, records)]
    if scores is not None:
        for j, label in enumerate(labels):
            frame[f"score_{label}"] = np.round(scores[:, j], 6)
    return frame


def write_csv(frame, path: str | Path) -> None:
    """Atomic CSV write."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def metrics_record(*, dataset: str, classifier: str, method: str, condition: str, seed: int | None,
                   model_path: str, gold: Sequence[str], preds: Sequence[str | None], labels: Sequence[str],
                   n_boot: int = 1000, **extra: Any) -> dict:
    """metrics.json per the contract, scores from :func:`explainbench.stats.classification_scores`."""
    out = {"dataset": dataset, "classifier": classifier, "method": method, "condition": condition,
           "seed": seed, "model_path": model_path}
    out.update(classification_scores(gold, preds, labels, n_boot=n_boot, seed=0))
    out.update(extra)
    return out
