"""PLR on frozen embeddings: the estimator, learning curves, the zero-shot comparison, occlusion explanations.

All on real data (an SST-2 sample) and real models (SmolLM2-135M-Instruct through vLLM's pooling
runner, all-MiniLM-L6-v2 through transformers); embeddings are computed once per session
(tests/plr_support.py) and shared.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from explainbench.errors import DataError
from explainbench.files import (CURVE_COLUMNS, PHRASE_COLUMNS, STABILITY_COLUMNS, Embeddings, read_embeddings,
                                read_metrics, read_phrases, read_stability, write_embeddings, write_metrics)
from explainbench.plr import curve as plr_curve
from explainbench.plr import occlusion as plr_occlusion
from explainbench.plr.classifier import PLRClassifier, PLRSettings, draw_rows
from explainbench.plr.curve import curve_summary, learning_curve, smallest_n_reaching
from explainbench.plr.embed import embed_occlusions
from explainbench.plr.occlusion import (ExplainSettings, OcclusionSettings, explain, occluded_texts, occlusions,
                                       stability, top_phrases)
from explainbench.workflow import rule_settings

from plr_support import (SST2_LABELS, minilm_spec, minilm_sst2, smollm2_embedder, smollm2_spec, smollm2_sst2,
                         smollm2_transformers, smollm2_vllm, sst2_config, sst2_job, sst2_sample, write_splits)

POSITIVE_WORDS = {"good", "great", "best", "funny", "beautiful", "wonderful", "fun", "brilliant", "enjoyable",
                  "excellent", "love", "loved", "moving", "charming", "delightful", "entertaining", "fascinating",
                  "powerful", "perfect", "touching", "remarkable", "compelling", "engaging", "terrific", "fine"}
NEGATIVE_WORDS = {"bad", "worst", "dull", "boring", "awful", "stupid", "mess", "tedious", "flat", "lame",
                  "poor", "worse", "unfunny", "pointless", "bland", "annoying", "failure", "fails", "dumb",
                  "terrible", "ugly", "sloppy", "tiresome", "lacks", "nothing", "no", "not", "never"}


def parts(emb):
    tr, te = emb.part("train"), emb.part("test")
    return tr.vectors, tr.labels, tr.ids, te.vectors, te.labels


OUTPUTS = {"plr_curve": ["curve"], "plr_explain": ["phrases", "stability"]}


def plr_job(tmp_path: Path, rule: str, emb: Embeddings, models: dict[str, dict], **plr):
    """A job of rule plr_curve or plr_explain for the one model of ``models`` on the SST-2 sample
    embedded as ``emb`` (the embeddings and split files written under ``tmp_path``, as are its
    outputs: curve.csv, phrases.csv, stability.csv); ``plr``: config plr settings."""
    write_embeddings(emb, tmp_path / "embeddings.npz")
    inputs = {"embeddings": str(tmp_path / "embeddings.npz"), **write_splits(tmp_path, sst2_sample())}
    outputs = {name: str(tmp_path / f"{name}.csv") for name in OUTPUTS[rule]}
    return sst2_job(rule, sst2_config(models, **plr), next(iter(models)), inputs, outputs)


def reaching(curve: pd.DataFrame, target) -> int | None:
    summary = curve_summary(curve)
    return smallest_n_reaching(summary["n_per_class"], summary["accuracy_mean"], target)


# --------------------------------------------------------------------------- the estimator

def test_plr_is_a_scikit_learn_classifier():
    Xtr, ytr, _, Xte, yte = parts(minilm_sst2())
    clf = PLRClassifier(penalty="l2", cv=3, Cs=[0.01, 0.1, 1.0], random_state=1)
    assert clone(clf).get_params() == clf.get_params()
    assert clf.fit(Xtr[:60], ytr[:60]) is clf
    assert list(clf.classes_) == SST2_LABELS and clf.C_ in (0.01, 0.1, 1.0) and clf.cv_folds_ == 3
    assert clf.coef_.shape == (1, Xtr.shape[1]) and clf.cv_scores_.shape == (3, 1)
    proba = clf.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert set(clf.predict(Xte)) <= set(SST2_LABELS)
    assert clf.score(Xte, yte) == pytest.approx((clf.predict(Xte) == yte).mean())
    # class log-odds: log p / (1 - p), and for two classes exactly (-f, f)
    lo = clf.class_log_odds(Xte[:5])
    np.testing.assert_allclose(lo[:, 1], np.log(proba[:5, 1] / proba[:5, 0]), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(lo[:, 0], -lo[:, 1])
    with pytest.raises(ValueError, match="features"):
        clf.predict(Xte[:, :10])


@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
def test_l1_and_elastic_net_choose_their_penalty_too(penalty):
    Xtr, ytr, _, Xte, yte = parts(minilm_sst2())
    clf = PLRClassifier(penalty=penalty, cv=3, Cs=[0.03, 0.3, 3.0], l1_ratios=(0.3, 0.7)).fit(Xtr[:80], ytr[:80])
    assert clf.l1_ratio_ == 1.0 if penalty == "l1" else clf.l1_ratio_ in (0.3, 0.7)
    if clf.C_ == 0.03:
        assert (clf.coef_ == 0).mean() > 0.5  # a strong L1 penalty zeroes most weights
    assert clf.score(Xte, yte) > 0.6


def test_tiny_samples_use_as_many_folds_as_the_smallest_class_allows():
    Xtr, ytr, ids, _, _ = parts(minilm_sst2())
    two = draw_rows(ids, ytr, 2, draw=0)
    clf = PLRClassifier(cv=5).fit(Xtr[two], ytr[two])
    assert clf.cv_folds_ == 2 and clf.cv_scores_ is not None
    one = draw_rows(ids, ytr, 1, draw=0)
    clf = PLRClassifier(cv=5, default_C=0.5).fit(Xtr[one], ytr[one])
    assert clf.cv_folds_ == 0 and clf.C_ == 0.5 and clf.cv_scores_ is None
    with pytest.raises(ValueError, match="two classes"):
        PLRClassifier().fit(Xtr[:3], ["negative"] * 3)
    with pytest.raises(ValueError, match="penalty"):
        PLRClassifier(penalty="l3").fit(Xtr[two], ytr[two])


def test_the_penalty_is_chosen_without_the_test_set():
    """Same training draws, two different test sets (one with poisoned labels): same C, same weights.

    If the penalty were tuned on the test set, the flipped labels would pick a different C.
    """
    emb = minilm_sst2()
    Xtr, ytr, ids, _, _ = parts(emb)
    train, test = emb.part("train"), emb.part("test")
    flipped = np.where(test.labels == "positive", "negative", "positive")
    poisoned_test = Embeddings(test.ids[::-1][:50], test.split[:50], flipped[::-1][:50], test.vectors[::-1][:50],
                               test.meta)
    grid = PLRSettings(n_per_class=[2, 8, 32], draws=2, penalty="l2", cv_folds=5, seed=3)
    honest = learning_curve(train, test, grid, SST2_LABELS)
    poisoned = learning_curve(train, poisoned_test, grid, SST2_LABELS)
    assert honest["C"].tolist() == poisoned["C"].tolist()
    assert honest["C"].nunique() > 1  # the choice really varies with the training draw
    assert honest["accuracy"].tolist() != poisoned["accuracy"].tolist()
    idx = draw_rows(ids, ytr, 32, draw=1, seed=3)
    a = PLRClassifier().fit(Xtr[idx], ytr[idx])
    b = PLRClassifier().fit(Xtr[idx], ytr[idx])
    assert a.C_ == b.C_
    np.testing.assert_array_equal(a.coef_, b.coef_)


# --------------------------------------------------------------------------- learning curves

def test_draws_are_seeded_nested_and_balanced():
    _, ytr, ids, _, _ = parts(minilm_sst2())
    d8, d8_again = draw_rows(ids, ytr, 8, draw=0), draw_rows(ids, ytr, 8, draw=0)
    np.testing.assert_array_equal(d8, d8_again)
    assert sorted(pd.Series(ytr[d8]).value_counts().tolist()) == [8, 8]
    assert set(draw_rows(ids, ytr, 4, draw=0)) <= set(d8)  # nested across n within a draw
    assert set(draw_rows(ids, ytr, 8, draw=1)) != set(d8)  # draws differ


def test_plr_on_encoder_embeddings_learns(tmp_path):
    """all-MiniLM-L6-v2 (an encoder, mean pooled) is an embedding model too: well above chance on SST-2."""
    job = plr_job(tmp_path, "plr_curve", minilm_sst2(), {"minilm": minilm_spec()}, n_per_class=[4, 32, 128, 1000],
                  draws=3)
    curve = plr_curve.run(job)  # rule plr_curve (penalty l2, 5 CV folds, seed 0: the config's defaults)
    written = pd.read_csv(tmp_path / "curve.csv")
    assert list(written.columns) == CURVE_COLUMNS
    assert sorted(written["n_per_class"].unique()) == [4, 32, 128]  # 1000 per class is more than the sample
    assert len(written) == 9 and (written["dataset"] == "sst2").all()
    summary = curve_summary(curve).set_index("n_per_class")
    assert summary.loc[128, "accuracy_mean"] > 0.7
    assert summary.loc[128, "accuracy_mean"] > summary.loc[4, "accuracy_mean"]
    assert reaching(curve, 0.5) == 4
    assert reaching(curve, 1.01) is None


def test_smallest_n_reaching_the_zero_shot_accuracy(tmp_path):
    metrics = {"dataset": "sst2", "classifier": "smollm2", "method": "zeroshot", "condition": "none", "fold": 0, "seed": None,
               "model_path": "m", "n": 200, "n_invalid": 0, "accuracy": 0.65, "accuracy_ci": [0.58, 0.71],
               "macro_f1": 0.64, "macro_f1_ci": [0.57, 0.7]}
    write_metrics(metrics, tmp_path / "metrics.json")
    assert read_metrics(tmp_path / "metrics.json")["accuracy"] == 0.65
    write_metrics({**metrics, "accuracy": None}, tmp_path / "bad.json")
    with pytest.raises(DataError, match=r"bad\.json, field 'accuracy'"):
        read_metrics(tmp_path / "bad.json")
    curve = pd.DataFrame({"n_per_class": [2, 2, 8, 8, 32, 32], "draw": [0, 1] * 3,
                          "accuracy": [0.5, 0.6, 0.6, 0.7, 0.8, 0.7], "macro_f1": 0.0, "C": 1.0})
    assert reaching(curve, 0.65) == 8  # the mean over draws at 8 is 0.65 (as a float, 0.6499999999999999)
    assert reaching(curve, 0.66) == 32
    assert reaching(curve, 0.76) is None
    assert reaching(curve, None) is None and reaching(curve, float("nan")) is None  # no zero-shot accuracy
    assert smallest_n_reaching([32, 8, 2], [0.9, 0.7, 0.5], 0.6) == 8  # in any order


# --------------------------------------------------------------------------- SmolLM2: the paper's claim

def zero_shot_accuracy(job) -> float:
    """SmolLM2's zero-shot next-token answer on the same test set (fold 0 of ``job.input["examples"]``), as rule
    `zeroshot` gets it (config/prompts/classification/classify.yaml, label words scored after
    "Label:"), read back from its metrics.json."""
    from explainbench.classify.zeroshot import classify_job

    out = Path(job.output["curve"]).parent
    config = sst2_config({"smollm2": smollm2_spec("transformers")})
    zeroshot = sst2_job("zeroshot", config, "smollm2", {"examples": job.input["examples"], "explanations": []},
                        {"metrics": str(out / "metrics.json"), "predictions": str(out / "predictions.csv")})
    classify_job(smollm2_transformers(),
                 dataclasses.replace(zeroshot, wildcards={**zeroshot.wildcards, "condition": "none", "fold": "0"}))
    return read_metrics(out / "metrics.json")["accuracy"]


@pytest.mark.slow
@pytest.mark.vllm
def test_plr_on_smollm2_improves_with_n_and_beats_its_zero_shot(tmp_path):
    emb, calls, texts = smollm2_sst2()
    n_texts = sum(len(v) for v in sst2_sample().values())
    assert texts == n_texts and calls == 2  # every text embedded once, in chunks of 256
    backend = smollm2_vllm()
    before = (backend.embed_calls, backend.texts_embedded)
    job = plr_job(tmp_path, "plr_curve", emb, {"smollm2": smollm2_spec()}, n_per_class=[4, 32, 128], draws=4)
    curve = plr_curve.run(job)
    # the learning curve (12 fits) reads the cache: not one more model call
    assert (backend.embed_calls, backend.texts_embedded) == before
    assert read_embeddings(job.input["embeddings"]).vectors.shape == (n_texts, 576)
    summary = curve_summary(curve).set_index("n_per_class")
    zs = zero_shot_accuracy(job)
    print(f"\nzero-shot {zs:.3f}; PLR accuracy by n per class:\n{summary[['accuracy_mean', 'accuracy_std']]}")
    assert 0.5 < zs < 0.75  # SmolLM2-135M is a weak zero-shot sentiment classifier (0.58 on all of SST-2 dev)
    assert summary.loc[128, "accuracy_mean"] > summary.loc[4, "accuracy_mean"] + 0.05
    assert summary.loc[128, "accuracy_mean"] > zs
    assert reaching(curve, zs) is not None


# --------------------------------------------------------------------------- explanations

def test_occlusions_remove_each_word_and_ngram():
    rec = {"id": "r", "text": "Not a great film .", "label": "negative"}
    got = [(o.phrase, o.ngram, o.record["text"]) for o in occlusions(rec, max_ngram=2)]
    assert got == [("not", 1, "a great film ."), ("a", 1, "Not great film ."), ("great", 1, "Not a film ."),
                   ("film", 1, "Not a great ."),
                   ("not a", 2, "great film ."), ("a great", 2, "Not film ."), ("great film", 2, "Not a ."),
                   ("film .", 2, "Not a great")]
    pair = {"id": "p", "premise": "A dog", "hypothesis": "It runs", "label": "e"}
    got = [(o.field, o.phrase, o.record["premise"], o.record["hypothesis"]) for o in occlusions(pair, 2)]
    assert got == [("premise", "a", "dog", "It runs"), ("premise", "dog", "A", "It runs"),
                   ("hypothesis", "it", "A dog", "runs"), ("hypothesis", "runs", "A dog", "It")]


def test_top_phrases_and_stability_from_contributions():
    rows = []
    for draw, film in ((0, 0.1), (1, 0.1), (2, -0.5)):
        for phrase, value in (("great", 2.0), ("film", film), ("dull", -1.5), ("plot", -0.2)):
            rows.append({"draw": draw, "label": "positive", "text_id": "t", "field": "text", "start": 0,
                         "phrase": phrase, "ngram": 1, "contribution": value})
    contrib = pd.DataFrame(rows)
    top = top_phrases(contrib, top_k=2, min_count=1)
    assert top["phrase"].tolist() == ["great", "film"] and top["rank"].tolist() == [1, 2]
    assert top["mean_contribution"].tolist() == pytest.approx([2.0, -0.1])
    assert top["sd_over_draws"].tolist() == pytest.approx([0.0, np.std([0.1, 0.1, -0.5], ddof=1)])
    stab = stability(contrib).set_index(["draw_a", "draw_b"])["spearman"]
    assert stab[(0, 1)] == pytest.approx(1.0)
    assert stab[(0, 2)] == pytest.approx(0.8)  # film drops below plot: 1 - 6 * 2 / (4 * 15)


def test_phrases_are_ranked_over_texts_and_draws_with_a_minimum_count():
    """A phrase seen once (a name) never outranks one seen in many texts, however large its one
    contribution; the default minimum count is the schema's, 3."""
    rows = []
    for draw in range(2):
        for t in range(4):
            rows.append({"draw": draw, "label": "positive", "text_id": f"t{t}", "phrase": "great", "ngram": 1,
                         "contribution": 1.0 + 0.1 * t + 0.2 * draw})
        rows.append({"draw": draw, "label": "positive", "text_id": "t0", "phrase": "labute", "ngram": 1,
                     "contribution": 5.0})
        for t in range(3):
            rows.append({"draw": draw, "label": "positive", "text_id": f"t{t}", "phrase": "the film", "ngram": 2,
                         "contribution": 0.1})
    contrib = pd.DataFrame(rows)
    default = sst2_config({"m": {"path": "-"}})["plr"]["explain_min_count"]
    assert default == 3
    top = top_phrases(contrib, top_k=5, min_count=default)
    assert top["phrase"].tolist() == ["great", "the film"] and top["count"].tolist() == [4, 3]
    assert top["mean_contribution"].iloc[0] == pytest.approx(1.25)           # 8 occurrences: 4 texts x 2 draws
    assert top["sd_over_draws"].iloc[0] == pytest.approx(np.std([1.15, 1.35], ddof=1))  # the per-draw means
    assert top_phrases(contrib, top_k=5, min_count=1)["phrase"].iloc[0] == "labute"


def test_stability_between_draws_at_each_n_and_between_n():
    def contrib(n_scale: dict[str, float]) -> pd.DataFrame:
        words = {"good": 2.0, "bad": -2.0, "plot": 0.1, "film": -0.1, "dull": -1.0}
        return pd.DataFrame([{"draw": d, "label": "positive", "phrase": w, "ngram": 1,
                              "contribution": v * n_scale.get(w, 1.0) + 0.01 * d * (w == "plot")}
                             for d in range(3) for w, v in words.items()]
                            + [{"draw": d, "label": "positive", "phrase": "not good", "ngram": 2, "contribution": -9.0}
                               for d in range(3)])
    stab = stability({4: contrib({"plot": -5.0}), 16: contrib({})})  # at n=4 'plot' ranks below 'film'
    assert list(stab.columns) == ["label", "comparison", "n_a", "n_b", "draw_a", "draw_b", "n_words", "spearman"]
    draws = stab[stab["comparison"] == "draws"]
    assert len(draws) == 2 * 3 and (draws["n_a"] == draws["n_b"]).all() and (draws["n_words"] == 5).all()
    assert draws["spearman"].tolist() == pytest.approx([1.0] * 6)             # the bigram is no word: left out
    across = stab[stab["comparison"] == "n"].iloc[0]
    assert (across["n_a"], across["n_b"]) == (4, 16) and pd.isna(across["draw_a"])
    assert across["spearman"] == pytest.approx(0.9)   # plot and film swap ranks 2 and 3: 1 - 6 * 2 / (5 * 24)


def test_rules_embed_and_plr_explain_with_a_real_encoder(tmp_path):
    """Rule embed with MiniLM on SST-2 sentences embeds the splits and the occluded variants of the
    texts to explain (one engine); rule plr_explain, loading no model, writes the top phrases per
    class and the stability of their ranking across the draws (phrases.csv, stability.csv)."""
    from explainbench.plr import embed as plr_embed

    plr = dict(n_per_class=[4, 16], draws=3, explain_max_texts=12, explain_top_k=5)
    config = sst2_config({"minilm": minilm_spec()}, **plr)
    inputs = write_splits(tmp_path, sst2_sample())
    embedded = {"embeddings": str(tmp_path / "embeddings.npz")}
    emb = plr_embed.run(sst2_job("embed", config, "minilm", inputs, embedded))
    sample = sst2_sample()
    assert (emb.split == "train").sum() == len(sample["train"]) and (emb.split == "test").sum() == len(sample["test"])
    variants = emb.part("occlusion")  # 12 texts, every word and bigram left out in turn
    assert len(variants.ids) > 12 * 5 and len(set(variants.ids)) == len(variants.ids)
    assert len({i.split("|")[0] for i in variants.ids}) == 12
    np.testing.assert_allclose(emb.part("train").vectors, minilm_sst2().part("train").vectors, atol=1e-5)

    job = sst2_job("plr_explain", config, "minilm", {**inputs, **embedded},
                   {name: str(tmp_path / f"{name}.csv") for name in OUTPUTS["plr_explain"]})
    plr_occlusion.run(job)
    phrases, stab = read_phrases(job.output["phrases"]), read_stability(job.output["stability"])
    assert list(pd.read_csv(job.output["phrases"]).columns) == PHRASE_COLUMNS
    assert list(pd.read_csv(job.output["stability"]).columns) == STABILITY_COLUMNS
    assert set(phrases["label"]) == set(SST2_LABELS) and (phrases[["dataset", "model"]] == ["sst2", "minilm"]).all().all()
    for _, group in phrases.groupby("label"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1)) and len(group) == 5
        assert group["mean_contribution"].is_monotonic_decreasing
    # ranked over the 12 texts and 3 draws: only phrases seen at least 3 times (the default), with their spread
    assert set(phrases["ngram"]) <= {1, 2} and (phrases["count"] >= 3).all()
    assert (phrases["sd_over_draws"] >= 0).all() and (phrases["sd_over_draws"] > 0).any()
    # stability: 3 draw pairs per class at n=4 and at n=16, and n=4 against n=16 per class
    draws, across = stab[stab["comparison"] == "draws"], stab[stab["comparison"] == "n"]
    assert sorted(draws.groupby("n_a").size().items()) == [(4, 6), (16, 6)]
    assert len(across) == 2 and (across[["n_a", "n_b"]] == [4, 16]).all().all()
    assert stab["spearman"].between(-1, 1).all() and (stab["n_words"] > 20).all()
    # explaining more texts than were embedded (the config changed since rule embed ran) is refused
    stale = sst2_job("plr_explain", sst2_config({"minilm": minilm_spec()}, **dict(plr, explain_max_texts=20)),
                     "minilm", job.input, job.output)
    with pytest.raises(DataError, match=r"embeddings\.npz: \d+ of \d+ occluded texts are not embedded .* re-run rule embed"):
        plr_occlusion.run(stale)


@pytest.mark.slow
@pytest.mark.vllm
def test_occlusion_ranks_sentiment_words_on_sst2():
    emb, _, _ = smollm2_sst2()
    tr = emb.part("train")
    lexicon = POSITIVE_WORDS | NEGATIVE_WORDS
    # short test sentences that hold at least one common sentiment word, 6 per class
    chosen = [r for r in sst2_sample()["test"] if len(r["text"].split()) <= 14
              and lexicon & set(r["text"].lower().split())]
    assert len(chosen) >= 12
    backend = smollm2_vllm()
    before = backend.embed_calls
    config = sst2_config({"smollm2": smollm2_spec()}, n_per_class=[4, 32, 128], draws=3, explain_max_texts=12,
                         explain_ngram=1, explain_top_k=15, explain_texts_per_call=6, explain_min_count=1)
    settings = ExplainSettings.from_settings(rule_settings(config, "plr_explain"))  # seed 0, l2, 5 CV folds
    occlusion = OcclusionSettings.from_settings(rule_settings(config, "embed"))
    variants = embed_occlusions(smollm2_embedder(backend), chosen, occlusion,
                                rule_settings(config, "embed")["explain_texts_per_call"])
    assert backend.embed_calls - before == 2  # 12 texts, 6 texts' occlusion sets per call
    phrases, stab, contrib = explain(tr, occluded_texts(emb.with_rows(variants), chosen, occlusion, "-"), settings)
    assert set(PHRASE_COLUMNS) - {"dataset", "model"} <= set(phrases.columns)
    assert set(STABILITY_COLUMNS) - {"dataset", "model"} <= set(stab.columns)
    top = {label: g.sort_values("rank")["phrase"].tolist() for label, g in phrases.groupby("label")}
    print("\ntop phrases:", top, "\nstability:", stab.groupby("label")["spearman"].mean().to_dict())
    assert NEGATIVE_WORDS & set(top["negative"]), top
    # all ~80 words of the 12 sentences ranked by their mean contribution to a class: the class's own
    # sentiment words rank well above the middle (chance: 0.5; seen: positive 0.33, negative 0.10)
    for label, own in (("positive", POSITIVE_WORDS), ("negative", NEGATIVE_WORDS)):
        mean = contrib[contrib["label"] == label].groupby("phrase")["contribution"].mean()
        pct = mean.rank(ascending=False, pct=True)
        present = sorted(own & set(pct.index))
        print(label, len(pct), "words;", pct[present].sort_values().round(2).to_dict())
        assert present and pct[present].mean() < 0.4, (label, pct[present].sort_values())
    # lexicon words push towards their own class on average (over all their occurrences)
    pos = contrib[(contrib["label"] == "positive") & (contrib["draw"] == 0)]
    assert pos[pos["phrase"].isin(POSITIVE_WORDS)]["contribution"].mean() > 0
    assert pos[pos["phrase"].isin(NEGATIVE_WORDS - {"no", "not", "never", "nothing"})]["contribution"].mean() < 0
    # three draws at 128 of 130 per class: nearly the same classifiers, so a stable ranking
    at_128 = stab[(stab["comparison"] == "draws") & (stab["n_a"] == 128)]
    assert len(at_128) == 6 and at_128["spearman"].min() > 0.5


# --------------------------------------------------------------------------- the rules, through Snakemake

@pytest.mark.slow
def test_snakemake_runs_embed_curve_and_explain_on_the_demo(tmp_path):
    """The three PLR rules end to end with real Snakemake on the demo sentiment set and the real MiniLM."""
    import subprocess
    import sys

    import yaml

    from support.ops import copy_workflow, link_models
    from plr_support import ROOT, demo_model

    work = copy_workflow(tmp_path / "repo", ROOT, demo=True)
    link_models(work, demo_model("all-MiniLM-L6-v2"))
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["plr"].update(datasets=["demo_sentiment"], models=["minilm"], n_per_class=[2, 8, 32], draws=2,
                         explain_max_texts=4, explain_top_k=5, explain_ngram=2)
    (work / "test.yaml").write_text(yaml.safe_dump(config))
    out = "results/plr/demo_sentiment/minilm"
    targets = [f"{out}/curve.csv", f"{out}/phrases.csv", f"{out}/stability.csv"]
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), *targets, "--cores", "2", "--configfile", "test.yaml"], cwd=work,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    emb = read_embeddings(work / "results/embeddings/demo_sentiment/minilm/embeddings.npz")
    # the splits and, for the explained model, the occluded variants of the 4 texts plr_explain explains
    assert emb.meta["pooling"] == "mean" and set(emb.split) == {"train", "test", "occlusion"}
    assert len({i.split("|")[0] for i in emb.part("occlusion").ids}) == 4
    curve = pd.read_csv(work / targets[0])
    assert list(curve.columns) == CURVE_COLUMNS and len(curve) == 6
    assert curve[curve["n_per_class"] == 32]["accuracy"].mean() > 0.8  # the demo set is easy
    phrases = pd.read_csv(work / targets[1])
    assert list(phrases.columns) == PHRASE_COLUMNS and set(phrases["label"]) == {"negative", "positive"}
    assert list(pd.read_csv(work / targets[2]).columns) == STABILITY_COLUMNS
    n_texts = len(emb.ids) - len(emb.part("occlusion").ids)
    assert f"embedded {n_texts}/{n_texts} texts" in (work / "logs/embed/demo_sentiment/minilm.log").read_text()
    assert "occlusion: 4/4 texts" in (work / "logs/embed/demo_sentiment/minilm.log").read_text()
    # a second run has nothing to do: everything is cached in the outputs
    again = subprocess.run([str(snakemake), *targets, "-n", "--cores", "2", "--configfile", "test.yaml"], cwd=work,
                           capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_only_explained_models_embed_occluded_texts():
    """Rule embed's params hold the occlusion settings only for the models whose PLR is explained,
    so changing them re-runs those models' embeddings alone."""
    from explainbench.workflow import embed_params

    config = sst2_config({"minilm": minilm_spec(), "other": minilm_spec()}, explain_models=["minilm"])
    assert embed_params(config, "minilm")["explain_max_texts"] == config["plr"]["explain_max_texts"]
    assert "explain_max_texts" not in embed_params(config, "other") and "seed" not in embed_params(config, "other")
    assert "explain_texts_per_call" not in embed_params(config, "minilm")  # runtime-only: never a param
    assert embed_params(config, "other")["pooling"] == embed_params(config, "minilm")["pooling"]
