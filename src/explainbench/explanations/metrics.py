"""Explanation quality against human references: BLEU, ROUGE, BERTScore, MAUVE.

Every function takes the generated explanations (``hyps``, one string per example) and the
human references (``refs``, one *list* of strings per example: e-SNLI has three, HealthFC
one). Per-example scores use all of an example's references; corpus figures carry bootstrap
95% intervals from :mod:`explainbench.stats`.

Scales are the libraries' own: BLEU 0-100 (sacrebleu), ROUGE and BERTScore 0-1, MAUVE 0-1.

- BLEU (sacrebleu): sentence BLEU per example (exp smoothing, effective order), corpus BLEU
  with one reference stream per reference slot (examples with fewer references get ``None``
  in the missing slots, which sacrebleu skips). Its interval resamples the per-sentence
  n-gram statistics, which is exactly how sacrebleu sums a corpus.
- ROUGE-1/2/L (rouge-score): F-measure against each reference, best reference per type.
- BERTScore (bert-score): P/R/F1 with a local backbone (``model_type=<path>``) and a layer;
  with several references bert-score keeps the best over them (for P, R and F1 each).
- MAUVE (mauve-text): on features we compute with a configured encoder through
  :func:`explainbench.engines.open_backend` (no hub download); the human side is every
  reference of every example (e-SNLI: three per example). Its interval resamples examples
  (each with all its references) and their clusters (see :func:`mauve_corpus`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ExplainBenchError
from ..stats import bootstrap_ci, mean_ci

log = logging.getLogger(__name__)

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
BERTSCORE_KEYS = ("bertscore_p", "bertscore_r", "bertscore_f1")


class QualityError(ExplainBenchError):
    """Bad input to a quality metric; the message says which input and where."""


def _check(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    hyps = list(hyps)
    refs = [[r for r in group if r] for group in refs]
    if len(hyps) != len(refs):
        raise QualityError(f"{len(hyps)} explanations but {len(refs)} reference groups")
    for i, group in enumerate(refs):
        if not group:
            raise QualityError(f"example {i}: no non-empty human reference")
    return hyps, refs


def summary(values: Sequence[float], bootstrap: int = 1000, seed: int = 0) -> dict:
    """Mean of per-example values with its bootstrap 95% interval (``value, ci_low, ci_high, n``)."""
    arr = np.asarray(values, dtype=float)
    out = mean_ci(arr, bootstrap, seed)
    return {"value": out["mean"], "ci_low": out["ci_low"], "ci_high": out["ci_high"],
            "n": int(np.sum(~np.isnan(arr)))}


# ============================================================================== BLEU

def bleu_sentence(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """Sentence BLEU (0-100) of each explanation against all of its references."""
    from sacrebleu.metrics import BLEU

    hyps, refs = _check(hyps, refs)
    metric = BLEU(effective_order=True, force=True)  # smooth "exp", as sacrebleu.sentence_bleu
    return np.array([metric.sentence_score(h, r).score for h, r in zip(hyps, refs)], dtype=float)


def reference_streams(refs: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-example reference lists -> sacrebleu's reference streams (None where an example has fewer)."""
    width = max((len(g) for g in refs), default=0)
    return [[g[k] if k < len(g) else None for g in refs] for k in range(width)]


def bleu_corpus(hyps: Sequence[str], refs: Sequence[Sequence[str]], bootstrap: int = 1000,
                seed: int = 0) -> dict:
    """Corpus BLEU (0-100) with a bootstrap 95% interval over examples."""
    from sacrebleu.metrics import BLEU

    hyps, refs = _check(hyps, refs)
    metric = BLEU(force=True)  # force: only silences the "tokenized period" warning
    streams = reference_streams(refs)
    value = metric.corpus_score(hyps, streams).score
    # per-sentence sufficient statistics: corpus BLEU of a resample is BLEU of their sum
    stats = np.asarray(metric._extract_corpus_statistics(hyps, streams), dtype=float)

    def resampled(idx: np.ndarray) -> float:
        return float(metric._compute_score_from_stats(stats[idx].sum(axis=0).tolist()).score)

    lo, hi = bootstrap_ci(resampled, len(hyps), bootstrap, seed)
    return {"value": float(value), "ci_low": lo, "ci_high": hi, "n": len(hyps)}


# ============================================================================== ROUGE

def rouge(hyps: Sequence[str], refs: Sequence[Sequence[str]], use_stemmer: bool = True) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L F-measure of each explanation: the best over its references, per type."""
    from rouge_score import rouge_scorer

    hyps, refs = _check(hyps, refs)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    out = {t: np.zeros(len(hyps)) for t in ROUGE_TYPES}
    for i, (h, group) in enumerate(zip(hyps, refs)):
        scores = [scorer.score(r, h) for r in group]  # score(target, prediction)
        for t in ROUGE_TYPES:
            out[t][i] = max(s[t].fmeasure for s in scores)
    return out


# ============================================================================== BERTScore

def bertscore_layers(model_path: str, num_layers: int | None) -> int:
    """The layer BERTScore reads: the configured one, bert-score's recommendation for a model
    it knows (by its hub id, or the id's or folder's last part: ``FacebookAI/roberta-large`` and
    ``/models/roberta-large`` are bert-score's ``roberta-large``, layer 17), else the model's
    last layer."""
    if num_layers:
        return int(num_layers)
    from bert_score.utils import model2layers

    for name in (model_path, Path(model_path.rstrip("/")).name):
        if name in model2layers:
            return model2layers[name]
    config = Path(model_path) / "config.json"
    if config.exists():
        layers = json.loads(config.read_text()).get("num_hidden_layers")
        if layers:
            log.warning("BERTScore: no num_layers for %s; using its last layer (%d). Set quality.bertscore.num_layers.",
                        model_path, layers)
            return int(layers)
    raise QualityError(f"BERTScore: cannot tell how many layers {model_path!r} has; set quality.bertscore.num_layers")


def bertscore(hyps: Sequence[str], refs: Sequence[Sequence[str]], model_path: str, num_layers: int | None = None,
              batch_size: int = 64, device: str | None = None) -> dict[str, np.ndarray]:
    """BERTScore P/R/F1 of each explanation against all of its references (best over them)."""
    import bert_score

    from ..engines.base import note_engine_start

    hyps, refs = _check(hyps, refs)
    layers = bertscore_layers(str(model_path), num_layers)
    note_engine_start(str(model_path), "bert-score")
    try:
        scorer = bert_score.BERTScorer(model_type=str(model_path), num_layers=layers, batch_size=batch_size,
                                       device=device, lang=None, idf=False, rescale_with_baseline=False)
    except OSError as err:
        raise QualityError(f"BERTScore: cannot load model {model_path!r}: {err}") from None
    p, r, f = scorer.score(hyps, refs, batch_size=batch_size)
    return {"bertscore_p": p.numpy().astype(float), "bertscore_r": r.numpy().astype(float),
            "bertscore_f1": f.numpy().astype(float)}


# ============================================================================== MAUVE

def embed_features(backend, texts: Sequence[str], pooling: str = "mean") -> np.ndarray:
    """Feature vectors for MAUVE from an encoder backend (see :mod:`explainbench.engines`)."""
    return np.asarray(backend.embed(list(texts), pooling=pooling), dtype=np.float32)


def mauve_score(p_features: np.ndarray, q_features: np.ndarray, *, num_buckets: int | str = "auto",
                scaling_factor: float = 5.0, seed: int = 25, **kwargs) -> float:
    """MAUVE between two feature sets (p: human, q: model), as mauve-text computes it."""
    import mauve

    p, q = np.asarray(p_features, dtype=np.float32), np.asarray(q_features, dtype=np.float32)
    if len(p) < 2 or len(q) < 2:
        raise QualityError(f"MAUVE needs at least 2 texts on each side, got {len(p)} and {len(q)}")
    out = mauve.compute_mauve(p_features=p, q_features=q, num_buckets=num_buckets,
                              mauve_scaling_factor=scaling_factor, seed=seed, verbose=False, **kwargs)
    return float(out.mauve)


# mauve.compute_mauve's own quantisation settings (its defaults): PCA to this share of the
# variance, k-means restarts and iterations.
MAUVE_EXPLAINED_VARIANCE, MAUVE_KMEANS_REDO, MAUVE_KMEANS_ITER = 0.9, 5, 500


def mauve_quantize(p_features: np.ndarray, q_features: np.ndarray, num_buckets: int,
                   seed: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The cluster of each text, exactly as ``mauve.compute_mauve`` quantizes (its ``cluster_feats``:
    l2 normalisation, PCA to 90% variance, faiss k-means with the same seeds), which returns
    only histograms; we need the labels to resample examples."""
    import faiss
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize

    data = normalize(np.vstack([q_features, p_features]), norm="l2", axis=1)
    pca = PCA(n_components=None, whiten=False, random_state=seed + 1).fit(data)
    keep = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= MAUVE_EXPLAINED_VARIANCE))
    data = pca.transform(data)[:, :keep + 1].astype(np.float32)
    kmeans = faiss.Kmeans(data.shape[1], num_buckets, niter=MAUVE_KMEANS_ITER, verbose=False,
                          nredo=MAUVE_KMEANS_REDO, update_index=True, seed=seed + 2)
    kmeans.train(data)
    labels = kmeans.index.search(data, 1)[1].reshape(-1)
    return labels[len(q_features):], labels[:len(q_features)]


def mauve_from_labels(p_labels: np.ndarray, q_labels: np.ndarray, num_buckets: int,
                      scaling_factor: float = 5.0) -> float:
    """MAUVE of two cluster-label samples, with mauve-text's own divergence curve and area."""
    from mauve.compute_mauve import compute_area_under_curve, get_divergence_curve_for_multinomials

    p = np.bincount(p_labels, minlength=num_buckets) / len(p_labels)
    q = np.bincount(q_labels, minlength=num_buckets) / len(q_labels)
    x, y = get_divergence_curve_for_multinomials(p, q, np.linspace(1e-6, 1 - 1e-6, 25), scaling_factor).T
    i1, i2 = np.argsort(x), np.argsort(y)
    return float(0.5 * (compute_area_under_curve(x[i1], y[i1]) + compute_area_under_curve(y[i2], x[i2])))


def mauve_corpus(p_features: np.ndarray, q_features: np.ndarray, *, bootstrap: int = 1000,
                 num_buckets: int | str = "auto", scaling_factor: float = 5.0,
                 p_owner: np.ndarray | None = None) -> dict:
    """MAUVE (mauve-text) of the human texts ``p`` against the model texts ``q`` (one per
    example), with a bootstrap 95% interval over examples.

    ``p_owner[i]`` is the example (row of ``q``) human text ``i`` belongs to: every reference of
    every example is on the human side. Without it, ``p`` pairs with ``q`` row by row.
    The texts are quantized once, as mauve-text does; the bootstrap resamples examples (an
    example's model text and all its human texts together) and recomputes MAUVE from their
    clusters. Re-clustering every resample instead biases MAUVE downwards (duplicated points
    distort k-means), so that its percentile interval often misses the estimate; the interval
    here is conditional on the quantization, and widened to include the estimate where it
    still misses it (MAUVE near 1). ``n`` counts the examples.
    """
    p, q = np.asarray(p_features, dtype=np.float32), np.asarray(q_features, dtype=np.float32)
    owner = np.arange(len(p)) if p_owner is None else np.asarray(p_owner, dtype=int)
    if len(owner) != len(p) or (len(owner) and (owner.min() < 0 or owner.max() >= len(q))):
        raise QualityError(f"MAUVE: {len(p)} human features need an example (0..{len(q) - 1}) each; "
                           f"got {len(owner)} owners")
    value = mauve_score(p, q, num_buckets=num_buckets, scaling_factor=scaling_factor)
    # mauve-text's "auto": one cluster per 10 texts of the smaller side
    buckets = max(2, int(round(min(len(p), len(q)) / 10))) if num_buckets == "auto" else int(num_buckets)
    p_labels, q_labels = mauve_quantize(p, q, buckets)
    check = mauve_from_labels(p_labels, q_labels, buckets, scaling_factor)
    if abs(check - value) > 1e-6:
        log.warning("MAUVE: our quantization gives %.6f, mauve-text %.6f; the interval is around ours", check, value)
    rows_of = [np.flatnonzero(owner == j) for j in range(len(q))]

    def resampled(idx: np.ndarray) -> float:
        human = np.concatenate([rows_of[j] for j in idx])
        return mauve_from_labels(p_labels[human], q_labels[idx], buckets, scaling_factor) if len(human) else float("nan")

    lo, hi = bootstrap_ci(resampled, len(q), bootstrap, seed=0)
    if not lo <= value <= hi:
        # Near 1 every resample (with its duplicated examples) scores a little lower than the
        # estimate; a percentile interval that misses the estimate is widened to reach it.
        log.warning("MAUVE %.5f lies outside its bootstrap interval [%.5f, %.5f]; the interval is widened to "
                    "include it", value, lo, hi)
        lo, hi = min(lo, value), max(hi, value)
    return {"value": value, "ci_low": lo, "ci_high": hi, "n": len(q)}
