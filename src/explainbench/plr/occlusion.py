"""Word- and phrase-level explanations of a PLR classifier by occlusion.

For a text, every word and every n-gram up to ``max_ngram`` words is removed in turn, the
wrapped text is embedded again, and the contribution of the phrase to class ``c`` is

    contribution = log-odds_c(full text) - log-odds_c(text without the phrase)

under the fitted PLR (log-odds_c = log p_c / (1 - p_c)); positive means the phrase pushes the
decision towards ``c``. All occluded variants of a text (and the text itself) go to the model
in one ``embed`` call (several texts per call). The variants are embedded once and scored by
every draw's classifier, so the stability of the phrase ranking across the repeated draws
(Spearman correlation of the phrases' mean contributions) costs no extra model calls.

N-grams never cross fields (premise / hypothesis) and n-grams made only of punctuation are
left out. Phrases are compared lower-cased.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .embed import EmbedSettings, embed_texts, model_inputs
from .classifier import PLRClassifier, draw_rows

log = logging.getLogger(__name__)

PHRASE_COLUMNS = ["dataset", "model", "label", "phrase", "ngram", "mean_contribution", "count", "rank"]
STABILITY_COLUMNS = ["dataset", "model", "label", "draw_a", "draw_b", "spearman"]


@dataclass
class Occlusion:
    text_id: str
    field: str
    start: int
    ngram: int
    phrase: str
    record: dict  # the record with the phrase removed


def text_fields(record: dict) -> list[str]:
    return ["premise", "hypothesis"] if record.get("premise") is not None and record.get("text") is None else ["text"]


def occlusions(record: dict, max_ngram: int) -> list[Occlusion]:
    """Every variant of ``record`` with one word or n-gram (n <= max_ngram) removed from one field."""
    out = []
    for name in text_fields(record):
        words = str(record[name]).split()
        for n in range(1, max_ngram + 1):
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if not any(ch.isalnum() for w in gram for ch in w):
                    continue  # punctuation only
                rest = words[:i] + words[i + n:]
                if not rest:
                    continue  # removing the whole field leaves no text
                out.append(Occlusion(str(record["id"]), name, i, n, " ".join(gram).lower(),
                                     {**record, name: " ".join(rest)}))
    return out


def occlusion_vectors(backend, records: Sequence[dict], *, labels: Sequence[str], template: dict | None,
                      settings: EmbedSettings, max_ngram: int, texts_per_call: int = 8):
    """Embed each text and all its occluded variants; returns (full vectors, occlusions, variant vectors).

    One ``backend.embed`` call per ``texts_per_call`` texts (their originals and variants together).
    """
    full, occ_all, occ_vecs = [], [], []
    t0, total = time.time(), len(records)
    for start in range(0, total, texts_per_call):
        batch = records[start:start + texts_per_call]
        occ = [o for r in batch for o in occlusions(r, max_ngram)]
        inputs = model_inputs(list(batch) + [o.record for o in occ], template, labels, settings.wrap)
        vectors = embed_texts(backend, inputs, pooling=settings.pooling, layer=settings.layer,
                              chunk_size=len(inputs), what="occlusion texts")
        full.append(vectors[:len(batch)])
        occ_vecs.append(vectors[len(batch):])
        occ_all.extend(occ)
        done = start + len(batch)
        log.info("occlusion: %d/%d texts (%d variants so far), %.0f s", done, total, len(occ_all), time.time() - t0)
    return np.concatenate(full), occ_all, np.concatenate(occ_vecs) if occ_vecs else np.zeros((0, 0), np.float32)


def contributions(classifiers: Sequence[PLRClassifier], records: Sequence[dict], full: np.ndarray,
                  occ: Sequence[Occlusion], occ_vectors: np.ndarray) -> pd.DataFrame:
    """Long table: one row per (draw, occlusion, class) with the change in that class's log-odds."""
    index = {str(r["id"]): k for k, r in enumerate(records)}
    rows_of = np.array([index[o.text_id] for o in occ], dtype=int)
    frames = []
    for draw, clf in enumerate(classifiers):
        base = clf.class_log_odds(full)[rows_of]
        delta = base - clf.class_log_odds(occ_vectors)
        for c, label in enumerate(clf.classes_):
            frames.append(pd.DataFrame({"draw": draw, "label": label, "text_id": [o.text_id for o in occ],
                                        "field": [o.field for o in occ], "start": [o.start for o in occ],
                                        "phrase": [o.phrase for o in occ], "ngram": [o.ngram for o in occ],
                                        "contribution": delta[:, c]}))
    return pd.concat(frames, ignore_index=True)


def phrase_scores(contrib: pd.DataFrame) -> pd.DataFrame:
    """Mean contribution and occurrence count per (draw, label, phrase, ngram)."""
    return (contrib.groupby(["draw", "label", "phrase", "ngram"], sort=True)
            .agg(mean_contribution=("contribution", "mean"), count=("contribution", "size")).reset_index())


def top_phrases(contrib: pd.DataFrame, top_k: int, min_count: int = 1) -> pd.DataFrame:
    """Per class: the ``top_k`` phrases with the largest mean contribution (over occurrences and draws)."""
    per_draw = phrase_scores(contrib)
    n_draws = per_draw["draw"].nunique()
    agg = (per_draw.groupby(["label", "phrase", "ngram"])
           .agg(mean_contribution=("mean_contribution", "mean"), count=("count", "first")).reset_index())
    agg["count"] = agg["count"].astype(int)
    agg = agg[agg["count"] >= min_count]
    out = []
    for label, group in agg.groupby("label", sort=True):
        best = group.sort_values(["mean_contribution", "phrase"], ascending=[False, True]).head(top_k).copy()
        best["rank"] = np.arange(1, len(best) + 1)
        out.append(best)
    frame = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["label", "phrase", "ngram",
                                                                                 "mean_contribution", "count", "rank"])
    log.info("top phrases from %d draws: %s", n_draws,
             {label: list(g["phrase"].head(5)) for label, g in frame.groupby("label")})
    return frame


def stability(contrib: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation of the phrases' mean contributions between every pair of draws, per class."""
    per_draw = phrase_scores(contrib)
    rows = []
    for label, group in per_draw.groupby("label", sort=True):
        table = group.pivot_table(index=["phrase", "ngram"], columns="draw", values="mean_contribution")
        for a, b in itertools.combinations(sorted(table.columns), 2):
            pair = table[[a, b]].dropna()
            rho = spearmanr(pair[a], pair[b]).statistic if len(pair) >= 3 else math.nan
            rows.append({"label": label, "draw_a": int(a), "draw_b": int(b), "spearman": float(rho)})
    return pd.DataFrame(rows, columns=["label", "draw_a", "draw_b", "spearman"])


def pick_texts(records: Sequence[dict], max_texts: int, seed: int | str = 0) -> list[dict]:
    """Up to ``max_texts`` test records, balanced over classes, chosen by the seed (hash order)."""
    from ..splits import sample_per_class

    k = len({r["label"] for r in records})
    return sample_per_class(list(records), math.ceil(max_texts / max(k, 1)), seed)[:max_texts]


def explanation_n(n_per_class: Sequence[int], train_labels: Sequence[str], wanted: int | None = None) -> int:
    """The n per class of the explained classifiers: ``wanted``, else the largest grid n the train split has."""
    smallest = int(min(np.unique(np.asarray(train_labels), return_counts=True)[1]))
    if wanted is not None:
        if wanted > smallest:
            raise ValueError(f"plr.explain_n_per_class={wanted} but the smallest training class has {smallest} examples")
        return int(wanted)
    fitting = [n for n in n_per_class if n <= smallest]
    if not fitting:
        raise ValueError(f"no n in plr.n_per_class={list(n_per_class)} fits the training split (smallest class {smallest})")
    return int(max(fitting))


def fit_draws(train_vectors, train_labels, train_ids, *, n: int, draws: int, seed: int | str = 0,
              penalty: str = "l2", cv: int = 5) -> list[PLRClassifier]:
    """One classifier per draw of ``n`` per class (the learning curve's draws at that n)."""
    train_labels = np.asarray(train_labels, dtype=str)
    out = []
    for draw in range(draws):
        idx = draw_rows(train_ids, train_labels, n, draw, seed)
        out.append(PLRClassifier(penalty=penalty, cv=cv, random_state=0).fit(train_vectors[idx], train_labels[idx]))
    return out


def explain(backend, *, train_vectors, train_labels, train_ids, test_records: Sequence[dict], labels: Sequence[str],
            template: dict | None, embed_settings: EmbedSettings, settings: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fit the draws' classifiers, occlude the chosen test texts; return (phrases, stability, contributions)."""
    n = explanation_n(settings["n_per_class"], train_labels, settings.get("explain_n_per_class"))
    classifiers = fit_draws(train_vectors, train_labels, train_ids, n=n, draws=settings["draws"],
                            seed=settings.get("seed", 0), penalty=settings.get("penalty", "l2"),
                            cv=settings.get("cv_folds", 5))
    texts = pick_texts(test_records, settings.get("explain_max_texts", 50), settings.get("seed", 0))
    log.info("explaining %d test texts with %d classifiers at n=%d per class (n-grams up to %d)", len(texts),
             len(classifiers), n, settings.get("explain_ngram", 2))
    full, occ, occ_vectors = occlusion_vectors(backend, texts, labels=labels, template=template,
                                               settings=embed_settings, max_ngram=settings.get("explain_ngram", 2),
                                               texts_per_call=settings.get("explain_texts_per_call", 8))
    contrib = contributions(classifiers, texts, full, occ, occ_vectors)
    return (top_phrases(contrib, settings.get("explain_top_k", 20), settings.get("explain_min_count", 1)),
            stability(contrib), contrib)


def run_explain(*, embeddings: str, train: str, test: str, phrases_out: str, stability_out: str, dataset: str,
                model: str, model_spec: dict, dataset_spec: dict, prompts_dir: str, settings: dict, backend=None):
    """Rule ``plr_explain``: phrases.csv and stability.csv for one dataset x model."""
    from ..engines import load_backend
    from ..io import read_jsonl
    from .embeddings import check_against_splits, read_embeddings
    from .classifier import write_csv
    from ..prompts import load_template

    splits = {"train": read_jsonl(train), "test": read_jsonl(test)}
    emb = read_embeddings(embeddings)
    check_against_splits(emb, splits, embeddings)
    tr = emb.part("train")
    embed_settings = EmbedSettings.for_model(model_spec, settings)
    if embed_settings.pooling != emb.meta.get("pooling") or embed_settings.layer != emb.meta.get("layer"):
        raise ValueError(f"{embeddings}: embedded with pooling={emb.meta.get('pooling')} layer={emb.meta.get('layer')}, "
                         f"but the config now says pooling={embed_settings.pooling} layer={embed_settings.layer}; re-run rule embed")
    template = (load_template(prompts_dir, "embed", dataset, dataset_spec.get("task", "nli"))
                if embed_settings.wrap else None)
    own = backend is None
    backend = backend or load_backend(model_spec, name=model)
    try:
        phrases, stab, _ = explain(backend, train_vectors=tr.vectors, train_labels=tr.labels, train_ids=tr.ids,
                                   test_records=splits["test"], labels=dataset_spec["labels"], template=template,
                                   embed_settings=embed_settings, settings=settings)
    finally:
        if own:
            backend.close()
    for frame in (phrases, stab):
        frame.insert(0, "model", model)
        frame.insert(0, "dataset", dataset)
    write_csv(phrases[PHRASE_COLUMNS], phrases_out)
    write_csv(stab[STABILITY_COLUMNS], stability_out)
    log.info("stability (mean Spearman over draw pairs): %s",
             stab.groupby("label")["spearman"].mean().round(3).to_dict() if len(stab) else "one draw only")
    return phrases, stab
