"""Rule ``plr_curve``: the PLR learning curve from the cached embeddings, and its reading.

:func:`learning_curve` fits one :class:`~.classifier.PLRClassifier` per (n per class, draw)
of the grid (:func:`~.classifier.fit_draw`: hash-seeded draws, nested across n) and scores
each on one fixed test set. :func:`smallest_n_reaching` is the comparison the report draws:
the smallest n per class whose mean accuracy over draws reaches a zero-shot LLM's accuracy.
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from ..files import check_against_splits, read_embeddings, write_curve
from ..splits import read_train_test
from ..stats import classification_scores
from .classifier import PLRSettings, fit_draw

if TYPE_CHECKING:
    from ..files import Embeddings

log = logging.getLogger(__name__)


def learning_curve(train: "Embeddings", test: "Embeddings", settings: PLRSettings,
                   labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Accuracy and macro-F1 on the fixed test set for every (n per class, draw).

    ``train`` and ``test`` are the train and test rows of an embeddings file
    (``Embeddings.part``); ``labels`` the label names (default: those in the two splits).
    Rows: ``n_per_class, draw, accuracy, macro_f1, C``. An ``n`` larger than the smallest
    training class is skipped (logged). The test set is only scored, never used for fitting.
    """
    test_labels = np.asarray(test.labels, dtype=str)
    labels = list(labels) if labels is not None else sorted(set(train.labels) | set(test_labels))
    smallest = min(np.unique(train.labels, return_counts=True)[1])
    rows, t0 = [], time.time()
    for n in sorted(set(int(n) for n in settings.n_per_class)):
        if n > smallest:
            log.warning("skipping n=%d per class: the smallest training class has %d examples", n, smallest)
            continue
        for draw in range(settings.draws):
            clf = fit_draw(train, n, draw, settings)
            scores = classification_scores(test_labels, clf.predict(test.vectors), labels, bootstrap=0)
            rows.append({"n_per_class": n, "draw": draw, "accuracy": scores["accuracy"],
                         "macro_f1": scores["macro_f1"], "C": clf.C_})
        done = [r["accuracy"] for r in rows if r["n_per_class"] == n]
        log.info("n=%d per class: accuracy %.3f (sd %.3f over %d draws), %.0f s so far", n, np.mean(done),
                 np.std(done), settings.draws, time.time() - t0)
    return pd.DataFrame(rows, columns=["n_per_class", "draw", "accuracy", "macro_f1", "C"])


def curve_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """Per n per class (ascending): the draws summarised, as the PLR table shows them: ``n_draws``,
    mean and sd of accuracy and macro-F1, and the median chosen C."""
    return (curve.groupby("n_per_class")
            .agg(n_draws=("draw", "nunique"), accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                 macro_f1_mean=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"), C_median=("C", "median"))
            .reset_index().sort_values("n_per_class"))


def smallest_n_reaching(n_per_class: Sequence[int], accuracy_mean: Sequence[float], target: float | None) -> int | None:
    """The smallest n per class whose mean accuracy is at least ``target`` (None: none is, or no
    finite target). Means within 1e-9 below count as reaching it: float means of equal values."""
    if target is None or not math.isfinite(target):
        return None
    hits = [n for n, a in sorted(zip(n_per_class, accuracy_mean)) if a >= target - 1e-9]
    return int(hits[0]) if hits else None


def run(job) -> pd.DataFrame:
    """Rule ``plr_curve``: the learning curve from the cached embeddings, written as curve.csv."""
    path = job.input["embeddings"]
    emb = read_embeddings(path)
    check_against_splits(emb, read_train_test(job.input["examples"]), path)
    settings = PLRSettings.from_settings(job.settings)
    train, test = emb.part("train"), emb.part("test")
    log.info("%s / %s: %d train, %d test vectors of dim %d; grid %s, %d draws, penalty %s", job.dataset, job.model,
             len(train.ids), len(test.ids), train.vectors.shape[1], settings.n_per_class, settings.draws,
             settings.penalty)
    curve = learning_curve(train, test, settings, emb.meta.get("labels"))
    if curve.empty:
        raise ValueError(f"{path}: no n in {settings.n_per_class} fits the training split "
                         f"(classes: {dict(zip(*np.unique(train.labels, return_counts=True)))})")
    curve.insert(0, "model", job.model)
    curve.insert(0, "dataset", job.dataset)
    write_curve(curve, job.output["curve"])
    return curve
