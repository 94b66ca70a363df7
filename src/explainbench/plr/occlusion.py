"""Word- and phrase-level explanations of a PLR classifier by occlusion.

For a text, every word and every n-gram up to ``max_ngram`` words is removed in turn, the
wrapped text is embedded again, and the contribution of the phrase to class ``c`` is

    contribution = log-odds_c(full text) - log-odds_c(text without the phrase)

under the fitted PLR (log-odds_c = log p_c / (1 - p_c)); positive means the phrase pushes the
decision towards ``c``. Rule ``embed`` embeds the occluded variants with the same engine start as
the splits (:func:`.embed.embed_occlusions`: rows of split ``occlusion`` in the embeddings file, several
texts' variants per ``embed`` call), so rule plr_explain loads no model. The variants are scored by
every draw's classifier at every n per class of the grid, so stability costs no extra model calls:
the Spearman correlation of the word importances (each word's mean contribution over the explained
texts) between every pair of draws at each n, and between consecutive n (mean over draws).

Phrases are ranked per class over all explained texts and all draws at the explained n (its mean
contribution over every occurrence and draw), among those seen at least ``min_count`` times in
the explained texts, with their spread over draws (the standard deviation of the per-draw means).

N-grams never cross fields (premise / hypothesis) and n-grams made only of punctuation are
left out. Phrases are compared lower-cased.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..files import EmbeddingError, Embeddings, check_against_splits, read_embeddings, write_phrases, write_stability
from ..splits import read_train_test, sample_per_class
from .classifier import PLRClassifier, PLRSettings, check_plr_sizes, fit_draw

log = logging.getLogger(__name__)

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


@dataclass
class OccludedTexts:
    """The explained texts and their occluded variants, embedded."""

    records: list[dict]
    vectors: np.ndarray               # one per record: the full text
    occlusions: list[Occlusion]
    occluded_vectors: np.ndarray      # one per occlusion


OCCLUSION_SPLIT = "occlusion"  # the embeddings file's rows of occluded texts (rule embed)


def occlusion_id(occ: Occlusion) -> str:
    """An occluded text's row id in the embeddings file: text, field, first word and length."""
    return f"{occ.text_id}|{occ.field}|{occ.start}|{occ.ngram}"


@dataclass(frozen=True)
class OcclusionSettings:
    """Which texts are explained and how they are occluded (config ``plr.*``): rule embed embeds
    exactly these variants, rule plr_explain scores them."""

    max_texts: int
    ngram: int
    seed: int

    @classmethod
    def from_settings(cls, settings: dict) -> "OcclusionSettings":
        return cls(int(settings["explain_max_texts"]), int(settings["explain_ngram"]), int(settings["seed"]))


def explained_texts(test_records: Sequence[dict], settings: OcclusionSettings) -> tuple[list[dict], list[Occlusion]]:
    """The test texts that are explained, and all their occluded variants."""
    texts = pick_texts(test_records, settings.max_texts, settings.seed)
    return texts, [o for r in texts for o in occlusions(r, settings.ngram)]


def occluded_texts(emb: Embeddings, test_records: Sequence[dict], settings: OcclusionSettings,
                   path: str | Path) -> OccludedTexts:
    """The explained texts' vectors (their test rows) and their variants' (rows ``occlusion``) from
    the embeddings file at ``path``; a variant it lacks is an error that says to re-run rule embed."""
    texts, occ = explained_texts(test_records, settings)
    row = {key: k for k, key in enumerate(zip(emb.split.tolist(), emb.ids.tolist()))}
    missing = [o for o in occ if (OCCLUSION_SPLIT, occlusion_id(o)) not in row]
    if missing:
        raise EmbeddingError(f"{path}: {len(missing)} of {len(occ)} occluded texts are not embedded (e.g. row "
                             f"{occlusion_id(missing[0])!r}: text {missing[0].text_id!r}, field {missing[0].field!r}, "
                             f"phrase {missing[0].phrase!r}); the file was made for other plr.explain_* settings: "
                             "re-run rule embed")
    full = [row[("test", str(r["id"]))] for r in texts]
    variants = [row[(OCCLUSION_SPLIT, occlusion_id(o))] for o in occ]
    return OccludedTexts(list(texts), emb.vectors[full], occ,
                         emb.vectors[variants] if variants else np.zeros((0, emb.vectors.shape[1]), np.float32))


def contributions(classifiers: Sequence[PLRClassifier], texts: OccludedTexts) -> pd.DataFrame:
    """Long table: one row per (draw, occlusion, class) with the change in that class's log-odds."""
    index = {str(r["id"]): k for k, r in enumerate(texts.records)}
    occ = texts.occlusions
    rows_of = np.array([index[o.text_id] for o in occ], dtype=int)
    frames = []
    for draw, clf in enumerate(classifiers):
        base = clf.class_log_odds(texts.vectors)[rows_of]
        delta = base - clf.class_log_odds(texts.occluded_vectors)
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


PHRASE_FRAME = ["label", "phrase", "ngram", "mean_contribution", "sd_over_draws", "count", "rank"]


def top_phrases(contrib: pd.DataFrame, top_k: int, min_count: int = 3) -> pd.DataFrame:
    """Per class: the ``top_k`` phrases with the largest mean contribution over all their occurrences in
    the explained texts and all draws, among phrases seen at least ``min_count`` times; ``sd_over_draws``
    is the standard deviation of the per-draw mean contributions (0 with one draw)."""
    per_draw = phrase_scores(contrib)
    n_draws = per_draw["draw"].nunique()
    agg = (per_draw.groupby(["label", "phrase", "ngram"])
           .agg(mean_contribution=("mean_contribution", "mean"), sd_over_draws=("mean_contribution", "std"),
                count=("count", "first")).reset_index())
    agg["count"] = agg["count"].astype(int)
    agg["sd_over_draws"] = agg["sd_over_draws"].fillna(0.0)
    agg = agg[agg["count"] >= min_count]
    out = []
    for label, group in agg.groupby("label", sort=True):
        best = group.sort_values(["mean_contribution", "phrase"], ascending=[False, True]).head(top_k).copy()
        best["rank"] = np.arange(1, len(best) + 1)
        out.append(best)
    frame = pd.concat(out, ignore_index=True)[PHRASE_FRAME] if out else pd.DataFrame(columns=PHRASE_FRAME)
    log.info("top phrases (seen >= %d times) from %d draws: %s", min_count, n_draws,
             {label: list(g["phrase"].head(5)) for label, g in frame.groupby("label")})
    return frame


STABILITY_FRAME = ["label", "comparison", "n_a", "n_b", "draw_a", "draw_b", "n_words", "spearman"]


def _spearman(a: pd.Series, b: pd.Series) -> float:
    return float(spearmanr(a, b).statistic) if len(a) >= 3 else math.nan


def word_importances(contrib: pd.DataFrame) -> pd.DataFrame:
    """Words (1-grams) x (draw, label): each word's mean contribution over its occurrences."""
    words = phrase_scores(contrib[contrib["ngram"] == 1])
    return words.pivot_table(index="phrase", columns=["label", "draw"], values="mean_contribution")


def stability(by_n: dict[int, pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """How stable the word importances are: per class, their Spearman correlation between every pair
    of draws at each n per class (``comparison`` draws, n_a = n_b), and between consecutive n of
    ``by_n`` (``comparison`` n: the importances averaged over draws). ``by_n``: n -> contributions
    (one frame: a single n, written as n 0)."""
    if isinstance(by_n, pd.DataFrame):
        by_n = {0: by_n}
    rows = []
    means = {}
    for n, contrib in sorted(by_n.items()):
        table = word_importances(contrib)
        for label in sorted(table.columns.get_level_values("label").unique()):
            per_draw = table[label]
            means[(n, label)] = per_draw.mean(axis=1)
            for a, b in itertools.combinations(sorted(per_draw.columns), 2):
                pair = per_draw[[a, b]].dropna()
                rows.append({"label": label, "comparison": "draws", "n_a": n, "n_b": n, "draw_a": int(a),
                             "draw_b": int(b), "n_words": len(pair), "spearman": _spearman(pair[a], pair[b])})
    ns = sorted(by_n)
    for n_a, n_b in zip(ns, ns[1:]):
        for label in sorted({lab for (n, lab) in means if n == n_a}):
            pair = pd.concat([means[(n_a, label)], means.get((n_b, label), pd.Series(dtype=float))], axis=1).dropna()
            rows.append({"label": label, "comparison": "n", "n_a": n_a, "n_b": n_b, "draw_a": None, "draw_b": None,
                         "n_words": len(pair), "spearman": _spearman(pair.iloc[:, 0], pair.iloc[:, 1])})
    out = pd.DataFrame(rows, columns=STABILITY_FRAME)
    for column in ("n_a", "n_b", "n_words"):
        out[column] = out[column].astype(int)
    for column in ("draw_a", "draw_b"):
        out[column] = out[column].astype("Int64")
    return out


def pick_texts(records: Sequence[dict], max_texts: int, seed: int | str = 0) -> list[dict]:
    """Up to ``max_texts`` test records, balanced over classes, chosen by the seed (hash order)."""
    k = len({r["label"] for r in records})
    return sample_per_class(list(records), math.ceil(max_texts / max(k, 1)), seed)[:max_texts]


def fitting_ns(n_per_class: Sequence[int], train_labels: Sequence[str]) -> list[int]:
    """The grid's n per class that the training split holds (ascending)."""
    smallest = int(min(np.unique(np.asarray(train_labels), return_counts=True)[1]))
    return sorted({int(n) for n in n_per_class if n <= smallest})


def explanation_n(n_per_class: Sequence[int], train_labels: Sequence[str], wanted: int | None = None) -> int:
    """The n per class of the explained classifiers: ``wanted``, else the largest grid n the train split has."""
    smallest = int(min(np.unique(np.asarray(train_labels), return_counts=True)[1]))
    if wanted is not None and wanted > smallest:
        raise ValueError(f"plr.explain_n_per_class={wanted} but the smallest training class has {smallest} examples")
    fitting = [n for n in n_per_class if n <= smallest]
    if wanted is None and not fitting:
        raise ValueError(f"no n in plr.n_per_class={list(n_per_class)} fits the training split (smallest class {smallest})")
    return int(wanted if wanted is not None else max(fitting))


@dataclass(frozen=True)
class ExplainSettings(PLRSettings):
    """The PLR draws' settings and how phrases are ranked: rule plr_explain's config ``plr.*`` keys
    (which texts are occluded, and how: :class:`OcclusionSettings`)."""

    explain_top_k: int
    explain_n_per_class: int | None
    explain_min_count: int


def explain(train: Embeddings, occluded: OccludedTexts,
            settings: ExplainSettings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fit the draws' classifiers on the ``train`` rows of the embeddings (at every n of the grid the
    training split holds, and at the explained n) and score the ``occluded`` texts; return
    (phrases at the explained n, stability over draws and n, contributions at the explained n)."""
    n = explanation_n(settings.n_per_class, train.labels, settings.explain_n_per_class)
    ns = sorted(set(fitting_ns(settings.n_per_class, train.labels)) | {n})
    log.info("explaining %d test texts (%d occluded variants) with %d draws at n=%d per class (n-grams up to %d); "
             "stability over n in %s", len(occluded.records), len(occluded.occlusions), settings.draws, n,
             max((o.ngram for o in occluded.occlusions), default=0), ns)
    by_n = {}
    for k in ns:  # words only at the other n: their stability is all that is read
        frame = contributions([fit_draw(train, k, draw, settings) for draw in range(settings.draws)], occluded)
        by_n[k] = frame if k == n else frame[frame["ngram"] == 1]
    contrib = by_n[n]
    return top_phrases(contrib, settings.explain_top_k, settings.explain_min_count), stability(by_n), contrib


def run(job) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule ``plr_explain``: phrases.csv and stability.csv for one dataset x model, from the
    embeddings file alone (rule embed embedded the occluded texts too: no model is loaded here)."""
    path = job.input["embeddings"]
    splits = read_train_test(job.input["examples"])
    check_plr_sizes(job, splits["train"])
    emb = read_embeddings(path)
    check_against_splits(emb, splits, path)
    settings = ExplainSettings.from_settings(job.settings)
    occluded = occluded_texts(emb, splits["test"], OcclusionSettings.from_settings(job.settings), path)
    phrases, stab, _ = explain(emb.part("train"), occluded, settings)
    for frame in (phrases, stab):
        frame.insert(0, "model", job.model)
        frame.insert(0, "dataset", job.dataset)
    write_phrases(phrases, job.output["phrases"])
    write_stability(stab, job.output["stability"])
    draws = stab[stab["comparison"] == "draws"]
    log.info("stability of word importances (mean Spearman over draw pairs, per n): %s",
             draws.groupby("n_a")["spearman"].mean().round(3).to_dict() if len(draws) else "one draw only")
    return phrases, stab
