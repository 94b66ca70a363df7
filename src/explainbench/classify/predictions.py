"""The two outputs of every classifier run (fine-tuned or zero-shot), per the file contract.

``results/<method>/.../predictions.csv``: ``id,gold,pred,correct`` (+ ``score_<label>``);
``metrics.json``: dataset, classifier, method, condition, seed, model_path and the scores
of :func:`explainbench.stats.classification_scores` (bootstrap intervals over the test set).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..files import write_metrics, write_predictions
from ..stats import classification_scores


@dataclass(frozen=True)
class RunIdentity:
    """What a classification run is: the first fields of its metrics.json, in this order."""

    dataset: str
    classifier: str
    method: str
    condition: str
    fold: int
    seed: int | None
    model_path: str

    @classmethod
    def of(cls, job, method: str, seed: int | None) -> "RunIdentity":
        """The identity of a rule's job: its dataset, fold, model and condition wildcards."""
        return cls(job.dataset, job.model, method, job.wildcards["condition"], job.wildcard_int("fold"), seed,
                   job.model_spec["path"])


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


def metrics_record(run: RunIdentity, gold: Sequence[str], preds: Sequence[str | None], labels: Sequence[str],
                   bootstrap: int, extra: dict[str, Any] | None = None) -> dict:
    """metrics.json per the contract: ``run``'s fields, the scores of
    :func:`explainbench.stats.classification_scores`, then ``extra``."""
    out = asdict(run)
    out.update(classification_scores(gold, preds, labels, bootstrap=bootstrap, seed=0))
    out.update(extra or {})
    return out


def write_outputs(job, predictions, metrics: dict) -> None:
    """A classifier job's two outputs: ``job.output["predictions"]`` (the :func:`predictions_frame`)
    and ``job.output["metrics"]`` (the :func:`metrics_record`)."""
    write_predictions(predictions, job.output["predictions"])
    write_metrics(metrics, job.output["metrics"])
