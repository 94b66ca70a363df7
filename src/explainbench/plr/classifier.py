"""Penalised logistic regression (PLR) on frozen embeddings, and its draws of training examples.

:class:`PLRClassifier` is a scikit-learn estimator: features are standardised, and the
penalty strength ``C`` (and, for elastic net, the L1 share) is chosen by stratified
cross-validation inside the training sample only; then one model is fitted on the whole
training sample with the chosen penalty. The test set is never seen by ``fit``.

A draw (:func:`draw_rows`, :func:`fit_draw`) is ``n`` examples per class from the training
split (hash-seeded :func:`explainbench.splits.draw_per_class`; draw ``r`` uses seed
``"{seed}-draw{r}"`` at every n, so a draw's samples are nested across n). The learning
curve (:mod:`.curve`) and the occlusion explanations (:mod:`.occlusion`) fit the same draws.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data
from threadpoolctl import threadpool_limits

from ..files import EmbeddingError
from ..splits import draw_per_class

if TYPE_CHECKING:
    from ..files import Embeddings

log = logging.getLogger(__name__)

DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 2, 13))
_L1_RATIO = {"l2": 0.0, "l1": 1.0}


@dataclass(eq=False, repr=False)  # the hyper-parameters are its fields (scikit-learn reads them from __init__)
class PLRClassifier(ClassifierMixin, BaseEstimator):
    """StandardScaler + logistic regression, penalty strength chosen by stratified CV on the training data.

    Parameters
    ----------
    penalty : "l2" (default), "l1" or "elasticnet".
    cv : folds of the stratified CV; with few examples, as many folds as the smallest class
        has examples (at least 2). With one example in a class there is no CV and ``C=default_C``.
    Cs : candidate inverse penalty strengths (default ``DEFAULT_CS``: 1e-4 .. 1e2, 13 values).
    l1_ratios : candidate L1 shares for elastic net.
    scoring : CV criterion, "log_loss" (smooth, good for tiny samples; default) or "accuracy".
        Ties go to the smaller C (the stronger penalty).

    Learned attributes: ``classes_``, ``C_``, ``l1_ratio_``, ``coef_``, ``intercept_``
    (on standardised features), ``scaler_``, ``model_``, ``cv_folds_``, ``cv_scores_``
    (shape (len(Cs), len(l1_ratios)), mean CV score, higher is better; None without CV).
    """

    penalty: str = "l2"
    cv: int = 5
    Cs: Sequence[float] | None = None
    l1_ratios: Sequence[float] = (0.2, 0.5, 0.8)
    scoring: str = "log_loss"
    default_C: float = 1.0
    max_iter: int = 5000
    random_state: int | None = 0

    # -- helpers ------------------------------------------------------------------------------
    def _ratios(self) -> list[float]:
        if self.penalty in _L1_RATIO:
            return [_L1_RATIO[self.penalty]]
        if self.penalty == "elasticnet":
            return [float(r) for r in self.l1_ratios]
        raise ValueError(f"penalty must be 'l2', 'l1' or 'elasticnet', got {self.penalty!r}")

    def _model(self, C: float, l1_ratio: float) -> LogisticRegression:
        if l1_ratio == 0.0:
            return LogisticRegression(C=C, l1_ratio=0.0, solver="lbfgs", max_iter=self.max_iter,
                                      random_state=self.random_state)
        if l1_ratio == 1.0 and len(getattr(self, "classes_", ())) == 2:  # much faster than saga for binary L1
            return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", max_iter=self.max_iter,
                                      random_state=self.random_state)
        # saga at tol 1e-3: at 1e-4 weak penalties on n << d take thousands of epochs for no visible gain
        return LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-3, max_iter=min(self.max_iter, 1000),
                                  random_state=self.random_state)

    def _score(self, model, X, y) -> float:
        if self.scoring == "accuracy":
            return float((model.predict(X) == y).mean())
        if self.scoring == "log_loss":
            return -float(log_loss(y, model.predict_proba(X), labels=model.classes_))
        raise ValueError(f"scoring must be 'log_loss' or 'accuracy', got {self.scoring!r}")

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X, y):
        # small dense problems: one BLAS thread is faster than two fighting over busy cores
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self._fit(X, y)
        unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        if unconverged:
            log.debug("%d of the CV/final fits stopped at max_iter (C_=%g)", unconverged, self.C_)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return self

    def _fit(self, X, y):
        X, y = check_X_y(X, y, dtype=np.float64)
        ratios = self._ratios()
        Cs = [float(c) for c in (self.Cs if self.Cs is not None else DEFAULT_CS)]
        if not Cs or min(Cs) <= 0:
            raise ValueError(f"Cs must be positive, got {Cs}")
        self.classes_, counts = np.unique(y, return_counts=True)
        if len(self.classes_) < 2:
            raise ValueError(f"PLR needs at least two classes in the training sample, got {list(self.classes_)}")
        self.n_features_in_ = X.shape[1]
        folds = min(int(self.cv), int(counts.min()))
        if folds >= 2:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
            scores = np.zeros((len(Cs), len(ratios)))
            for train_idx, val_idx in splitter.split(X, y):
                scaler = StandardScaler().fit(X[train_idx])
                Xt, Xv = scaler.transform(X[train_idx]), scaler.transform(X[val_idx])
                for j, r in enumerate(ratios):
                    model = self._model(Cs[0], r).set_params(warm_start=True)  # a path: each fit starts at the last
                    for i in np.argsort(Cs, kind="stable"):
                        model.set_params(C=Cs[i]).fit(Xt, y[train_idx])
                        scores[i, j] += self._score(model, Xv, y[val_idx]) / folds
            # first maximum in (C ascending, ratio) order: ties go to the stronger penalty
            order = np.argsort(Cs, kind="stable")
            best = max(((scores[i, j], -k, i, j) for k, i in enumerate(order) for j in range(len(ratios))))
            self.C_, self.l1_ratio_ = Cs[best[2]], ratios[best[3]]
            self.cv_scores_, self.cv_folds_ = scores, folds
        else:
            self.C_, self.l1_ratio_ = float(self.default_C), ratios[0]
            self.cv_scores_, self.cv_folds_ = None, 0
            log.debug("smallest class has %d example(s): no CV, C=%g", counts.min(), self.C_)
        self.scaler_ = StandardScaler().fit(X)
        self.model_ = self._model(self.C_, self.l1_ratio_).fit(self.scaler_.transform(X), y)
        self.coef_, self.intercept_ = self.model_.coef_, self.model_.intercept_
        return self

    # -- predict ------------------------------------------------------------------------------
    def _transform(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.scaler_.transform(X)

    def decision_function(self, X):
        return self.model_.decision_function(self._transform(X))

    def predict_proba(self, X):
        return self.model_.predict_proba(self._transform(X))

    def predict_log_proba(self, X):
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    def predict(self, X):
        return self.model_.predict(self._transform(X))

    def class_log_odds(self, X) -> np.ndarray:
        """log p_c / (1 - p_c) for every class c (columns in ``classes_`` order), shape (n, k).

        For two classes this is exactly (-f, f) with f the decision function.
        """
        if len(self.classes_) == 2:
            f = self.decision_function(X)
            return np.stack([-f, f], axis=1)
        p = np.clip(self.predict_proba(X), 1e-12, 1 - 1e-12)
        return np.log(p) - np.log1p(-p)


# ============================================================================== draws

@dataclass(frozen=True)
class PLRSettings:
    """The draws and the penalty of the PLR fits: config ``plr.*`` (rule plr_curve's settings)."""

    n_per_class: Sequence[int]
    draws: int
    penalty: str
    cv_folds: int
    seed: int

    @classmethod
    def from_settings(cls, settings: dict):
        """From a job's settings (:attr:`explainbench.workflow.Job.settings`), by field name."""
        return cls(**{f.name: settings[f.name] for f in fields(cls)})


def _records(ids: Sequence[str], labels: Sequence[str]) -> list[dict]:
    ids, labels = [str(i) for i in ids], [str(label) for label in labels]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicate training id {dup!r}")
    return [{"id": i, "label": label, "row": k} for k, (i, label) in enumerate(zip(ids, labels))]


def draw_rows(ids: Sequence[str], labels: Sequence[str], n: int, draw: int, seed: int | str = 0) -> np.ndarray:
    """Row indices of draw ``draw`` of ``n`` examples per class (hash-seeded, nested across n)."""
    return np.array([r["row"] for r in draw_per_class(_records(ids, labels), n, f"{seed}-draw{draw}")], dtype=int)


def fit_draw(train: "Embeddings", n: int, draw: int, settings: PLRSettings) -> PLRClassifier:
    """The classifier fitted on draw ``draw`` of ``n`` examples per class of ``train`` (the train rows)."""
    labels = np.asarray(train.labels, dtype=str)
    idx = draw_rows(train.ids, labels, n, draw, settings.seed)
    return PLRClassifier(penalty=settings.penalty, cv=settings.cv_folds, random_state=0).fit(train.vectors[idx],
                                                                                              labels[idx])


def check_plr_sizes(job, train: Sequence[dict]) -> None:
    """Before any engine starts: the explained classifiers' n per class (``plr.explain_n_per_class``,
    else the smallest ``plr.n_per_class``) fits every class of the training split, which rule
    plr_explain draws from after this job."""
    plr = job.config["plr"]
    wanted = plr["explain_n_per_class"]
    key = "plr.explain_n_per_class" if wanted is not None else "plr.n_per_class"
    need = wanted if wanted is not None else min(plr["n_per_class"])
    counts: dict[str, int] = {}
    for rec in train:
        counts[rec["label"]] = counts.get(rec["label"], 0) + 1
    label, have = min(counts.items(), key=lambda kv: kv[1]) if counts else ("-", 0)
    if need > have:
        raise EmbeddingError(f"config key {key}: {need} example(s) per class, but {job.input['examples']} (the "
                             f"train split), field 'label': class {label!r} has {have} training example(s) (of {len(train)}); "
                             f"lower {key} (or give the dataset more rows)")
