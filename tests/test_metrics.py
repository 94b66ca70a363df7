"""Explanation-quality metrics: each checked against its library called directly, against
hand-computed cases, and on real e-SNLI human explanations (each scored against the other two
references) versus shuffled ones."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ESNLI_LABELS, encoder_spec
from explainbench.explanations import metrics
from explainbench.data import load_records

SAMPLE = 120  # e-SNLI pairs with three human explanations


@pytest.fixture(scope="module")
def esnli_sample(esnli_path):
    """(hyps, other_refs, shuffled_hyps, premises): explanation 1 of each pair, explanations 2-3 of the
    same pair as its references, explanation 1 of another pair, and other pairs' premises."""
    records = [r for r in load_records(esnli_path, format="esnli", labels=ESNLI_LABELS) if len(r["explanations"]) == 3]
    rng = np.random.default_rng(0)
    sample = [records[i] for i in rng.choice(len(records), SAMPLE, replace=False)]
    hyps = [r["explanations"][0] for r in sample]
    refs = [r["explanations"][1:] for r in sample]
    perm = np.roll(np.arange(SAMPLE), 1)  # a derangement: every pair gets another pair's explanation
    shuffled = [hyps[i] for i in perm]
    premises = [sample[i]["premise"] for i in rng.permutation(SAMPLE)]
    return hyps, refs, shuffled, premises, sample


# ---------------------------------------------------------------------------------- BLEU

def test_sentence_bleu_equals_sacrebleu_called_directly(esnli_sample):
    import sacrebleu

    hyps, refs, *_ = esnli_sample
    ours = metrics.bleu_sentence(hyps[:40], refs[:40])
    direct = [sacrebleu.sentence_bleu(h, r).score for h, r in zip(hyps[:40], refs[:40])]
    np.testing.assert_allclose(ours, direct, atol=1e-9)


def test_corpus_bleu_equals_sacrebleu_with_reference_streams(esnli_sample):
    import sacrebleu

    hyps, refs, *_ = esnli_sample
    ours = metrics.bleu_corpus(hyps, refs, bootstrap=50)
    direct = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs], [r[1] for r in refs]]).score
    assert ours["value"] == pytest.approx(direct, abs=1e-9)
    assert ours["n"] == len(hyps)
    assert ours["ci_low"] <= ours["value"] <= ours["ci_high"]


def test_corpus_bleu_with_a_variable_number_of_references():
    import sacrebleu

    hyps = ["a man is playing a guitar on stage .", "two dogs run in the park ."]
    refs = [["a man plays a guitar on a stage .", "someone is playing music ."], ["dogs are running outside ."]]
    ours = metrics.bleu_corpus(hyps, refs, bootstrap=20)["value"]
    direct = sacrebleu.corpus_bleu(hyps, [[refs[0][0], refs[1][0]], [refs[0][1], None]]).score
    assert ours == pytest.approx(direct)
    assert metrics.reference_streams(refs) == [[refs[0][0], refs[1][0]], [refs[0][1], None]]


def test_bleu_hand_computed_cases():
    text = "the man is sleeping so he cannot be running ."
    assert metrics.bleu_sentence([text], [[text]])[0] == pytest.approx(100.0)
    assert metrics.bleu_corpus([text], [[text]], bootstrap=10)["value"] == pytest.approx(100.0)
    assert metrics.bleu_sentence(["purple elephants dance quietly"], [[text]])[0] == pytest.approx(0.0, abs=1e-6)
    assert metrics.bleu_corpus(["purple elephants dance quietly"], [[text]], bootstrap=10)["value"] == 0.0
    # one of three references matching scores as that reference alone
    hyp = "a woman is riding a bike down the street"
    others = ["there is a lady outdoors", "cycling is a sport"]
    for position in range(3):
        refs = others[:position] + [hyp] + others[position:]
        assert metrics.bleu_sentence([hyp], [refs])[0] == pytest.approx(metrics.bleu_sentence([hyp], [[hyp]])[0])
    partial = "a woman rides a bike down a street"
    three = metrics.bleu_sentence([partial], [[others[0], hyp, others[1]]])[0]
    assert three == pytest.approx(metrics.bleu_sentence([partial], [[hyp]])[0])
    assert 0 < three < 100


def test_human_bleu_far_above_shuffled(esnli_sample):
    hyps, refs, shuffled, *_ = esnli_sample
    human, other = metrics.bleu_sentence(hyps, refs).mean(), metrics.bleu_sentence(shuffled, refs).mean()
    assert human > 3 * other, (human, other)
    corpus_h = metrics.bleu_corpus(hyps, refs, bootstrap=100)
    corpus_s = metrics.bleu_corpus(shuffled, refs, bootstrap=100)
    assert corpus_h["value"] > 3 * corpus_s["value"]
    assert corpus_h["ci_low"] > corpus_s["ci_high"]  # the intervals do not even overlap


# ---------------------------------------------------------------------------------- ROUGE

def test_rouge_equals_rouge_score_called_directly(esnli_sample):
    from rouge_score import rouge_scorer

    hyps, refs, *_ = esnli_sample
    ours = metrics.rouge(hyps[:40], refs[:40])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for i, (h, r) in enumerate(zip(hyps[:40], refs[:40])):
        direct = scorer.score_multi(r, h)  # best reference by F-measure, per type
        for t in metrics.ROUGE_TYPES:
            assert ours[t][i] == pytest.approx(direct[t].fmeasure)


def test_rouge_hand_computed_cases():
    text = "a dog is running through the snow"
    for t, v in metrics.rouge([text], [[text]]).items():
        assert v[0] == pytest.approx(1.0), t
    for t, v in metrics.rouge(["purple elephants dance quietly"], [[text]]).items():
        assert v[0] == 0.0, t
    # "the cat sat" vs "the cat ran": 2 of 3 unigrams, 1 of 2 bigrams, LCS of 2 words
    out = metrics.rouge(["the cat sat"], [["the cat ran"]])
    assert out["rouge1"][0] == pytest.approx(2 / 3)
    assert out["rouge2"][0] == pytest.approx(1 / 2)
    assert out["rougeL"][0] == pytest.approx(2 / 3)
    # one of three references matching scores as that reference alone
    three = metrics.rouge(["the cat sat"], [["a bird flew", "the cat ran", "nothing here"]])
    for t in metrics.ROUGE_TYPES:
        assert three[t][0] == pytest.approx(out[t][0])


def test_human_rouge_far_above_shuffled(esnli_sample):
    hyps, refs, shuffled, *_ = esnli_sample
    human, other = metrics.rouge(hyps, refs), metrics.rouge(shuffled, refs)
    assert human["rougeL"].mean() > 2 * other["rougeL"].mean()
    assert human["rouge2"].mean() > 4 * other["rouge2"].mean()
    h, s = metrics.summary(human["rougeL"], bootstrap=200), metrics.summary(other["rougeL"], bootstrap=200)
    assert h["ci_low"] <= h["value"] <= h["ci_high"] and h["ci_low"] > s["ci_high"]


def test_missing_references_are_an_error():
    with pytest.raises(metrics.QualityError, match="example 1: no non-empty human reference"):
        metrics.rouge(["a", "b"], [["a"], ["", ""]])
    with pytest.raises(metrics.QualityError, match="2 explanations but 1 reference groups"):
        metrics.bleu_sentence(["a", "b"], [["a"]])


# ---------------------------------------------------------------------------------- BERTScore

@pytest.fixture(scope="module")
def bertscore_pairs(esnli_sample, minilm_path):
    hyps, refs, shuffled, *_ = esnli_sample
    n = 80
    human = metrics.bertscore(hyps[:n], refs[:n], str(minilm_path), num_layers=6)
    other = metrics.bertscore(shuffled[:n], refs[:n], str(minilm_path), num_layers=6)
    return human, other, n


def test_bertscore_equals_bert_score_called_directly(esnli_sample, bertscore_pairs, minilm_path):
    import bert_score

    hyps, refs, *_ = esnli_sample
    human, _, _ = bertscore_pairs
    p, r, f = bert_score.score(hyps[:20], refs[:20], model_type=str(minilm_path), num_layers=6)
    np.testing.assert_allclose(human["bertscore_p"][:20], p.numpy(), atol=1e-5)
    np.testing.assert_allclose(human["bertscore_r"][:20], r.numpy(), atol=1e-5)
    np.testing.assert_allclose(human["bertscore_f1"][:20], f.numpy(), atol=1e-5)


def test_bertscore_hand_computed_cases(minilm_path):
    text = "a man is playing a guitar on stage"
    disjoint = "quarterly tax filings are due in april"
    others = ["the sun is shining", "people are eating dinner"]
    out = metrics.bertscore([text, disjoint, text, text], [[text], [text], others[:1] + [text] + others[1:], others],
                            str(minilm_path), num_layers=6)
    for key in metrics.BERTSCORE_KEYS:
        assert out[key][0] == pytest.approx(1.0, abs=1e-4), key  # identical
        assert out[key][2] == pytest.approx(out[key][0], abs=1e-6), key  # one of three matching = it alone
        # BERTScore (without baseline rescaling) has no zero floor: unrelated text scores low, not 0
        assert out[key][1] < 0.5 and out[key][1] < out[key][0] - 0.5, key
        assert out[key][3] < 0.6, key


def test_bertscore_layers_need_a_number_for_an_unknown_model(tmp_path):
    assert metrics.bertscore_layers("anything", 4) == 4
    assert metrics.bertscore_layers("roberta-base", None) == 10  # bert-score's own recommendation
    # the paper config's hub id and a local copy of roberta-large: bert-score's usual layer 17
    assert metrics.bertscore_layers("FacebookAI/roberta-large", None) == 17
    assert metrics.bertscore_layers("/models/roberta-large/", None) == 17
    with pytest.raises(metrics.QualityError, match="quality.bertscore.num_layers"):
        metrics.bertscore_layers(str(tmp_path), None)


def test_human_bertscore_far_above_shuffled(bertscore_pairs):
    human, other, n = bertscore_pairs
    for key in metrics.BERTSCORE_KEYS:
        h, s = metrics.summary(human[key], bootstrap=200), metrics.summary(other[key], bootstrap=200)
        assert h["value"] > s["value"] + 0.25, key
        assert h["ci_low"] <= h["value"] <= h["ci_high"] and h["ci_low"] > s["ci_high"], key
        assert h["n"] == n


# ---------------------------------------------------------------------------------- MAUVE

@pytest.fixture(scope="module")
def mauve_features(esnli_sample, minilm_path):
    """MiniLM features of human explanation 1, human explanation 2 (of the same pairs) and premises."""
    hyps, refs, _, premises, _ = esnli_sample
    from explainbench.engines import open_backend

    with open_backend(encoder_spec(minilm_path), "minilm") as encoder:
        return tuple(metrics.embed_features(encoder, texts, "mean") for texts in (hyps, [r[0] for r in refs], premises))


def test_mauve_equals_mauve_text_called_directly(mauve_features):
    import mauve

    first, second, _ = mauve_features
    direct = mauve.compute_mauve(p_features=first, q_features=second, verbose=False).mauve
    assert metrics.mauve_score(first, second) == pytest.approx(direct)


def test_mauve_hand_computed_cases():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(100, 16)).astype(np.float32)
    assert metrics.mauve_score(p, p.copy()) == pytest.approx(1.0, abs=1e-6)  # the same distribution
    far = rng.normal(size=(100, 16)).astype(np.float32)
    far[:, 0] += 50.0  # disjoint support: every cluster holds one side only
    assert metrics.mauve_score(p, far) < 0.02
    with pytest.raises(metrics.QualityError, match="at least 2 texts"):
        metrics.mauve_score(p[:1], p[:1])


def test_mauve_human_vs_human_above_human_vs_unrelated_text(mauve_features):
    first, second, premises = mauve_features
    human = metrics.mauve_corpus(first, second, bootstrap=200)
    unrelated = metrics.mauve_corpus(first, premises, bootstrap=200)
    assert human["value"] > 0.9
    assert human["value"] > unrelated["value"] + 0.1, (human, unrelated)
    for out in (human, unrelated):
        assert out["ci_low"] <= out["value"] <= out["ci_high"] <= 1.0
        assert out["n"] == len(first)


def test_mauve_quantization_is_mauve_texts(mauve_features):
    first, _, premises = mauve_features
    buckets = round(len(first) / 10)
    p_labels, q_labels = metrics.mauve_quantize(first, premises, buckets)
    assert metrics.mauve_from_labels(p_labels, q_labels, buckets) == pytest.approx(metrics.mauve_score(first, premises))


def test_mauve_features_come_from_the_configured_encoder(minilm_path):
    texts = ["a dog runs", "a cat sleeps", "a dog runs"]
    from explainbench.engines import open_backend

    with open_backend(encoder_spec(minilm_path), "minilm") as encoder:
        features = metrics.embed_features(encoder, texts, pooling="mean")
    assert features.shape == (3, 384) and features.dtype == np.float32
    np.testing.assert_allclose(features[0], features[2], atol=1e-5)
    assert not np.allclose(features[0], features[1])


# ---------------------------------------------------------------------------------- the stage

def _score_job(tmp_path, sample, texts, minilm_path):
    """A score_explanations Job over real pairs: explanations ``texts`` against explanations 2-3."""
    from explainbench.config import validate_config
    from explainbench.io import write_jsonl
    from explainbench.workflow import Job, rule_settings

    config = validate_config({
        "datasets": {"esnli": {"format": "esnli", "path": "-", "labels": ESNLI_LABELS}},
        "models": {"minilm": {"path": str(minilm_path), "kind": "encoder", "backend": "transformers",
                              "dtype": "float32", "max_model_len": 256}},
        "quality": {"bertscore": {"model": "minilm", "num_layers": 6}, "mauve": {"model": "minilm"},
                    "bootstrap": 50}})
    # every sample pair is in fold 0's test split; its references are explanations 2-3
    examples = [dict(r, explanations=r["explanations"][1:], test_fold=0, dev_folds=[], demonstration=None)
                for r in sample]
    write_jsonl(examples, tmp_path / "examples.jsonl")
    write_jsonl([{"id": r["id"], "text": t, "states_label": "neutral" in t} for r, t in zip(sample, texts)],
                tmp_path / "explanations.jsonl")
    return Job(input={"explanations": str(tmp_path / "explanations.jsonl"), "examples": str(tmp_path / "examples.jsonl")},
               output={"per_example": str(tmp_path / "per_example.csv"), "corpus": str(tmp_path / "corpus.csv")},
               config=config, wildcards={"dataset": "esnli", "model": "human1", "fold": "0", "shots": "0", "seed": "0"},
               settings=rule_settings(config, "score_explanations"))


def test_score_explanations_stage_ranks_human_above_shuffled(tmp_path, esnli_sample, minilm_path):
    """The stage's run(job): real BLEU/ROUGE/BERTScore/MAUVE, files written, human above shuffled."""
    import pandas as pd

    from explainbench.explanations.scoring import run

    hyps, _, shuffled, _, sample = esnli_sample
    (tmp_path / "h").mkdir(), (tmp_path / "s").mkdir()
    human = run(_score_job(tmp_path / "h", sample, hyps, minilm_path)).set_index("metric")
    other = run(_score_job(tmp_path / "s", sample, shuffled, minilm_path)).set_index("metric")
    assert list(human.index) == ["bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1",
                                 "mauve", "states_label"]
    assert (human["explainer"] == "human1").all() and (human["n"] == SAMPLE).all() and (human["fold"] == 0).all()
    assert human.loc["states_label", "value"] == pytest.approx(np.mean(["neutral" in h for h in hyps]))
    for metric in human.index.drop("states_label"):
        assert human.loc[metric, "value"] > other.loc[metric, "value"], metric
        assert human.loc[metric, "ci_low"] <= human.loc[metric, "value"] <= human.loc[metric, "ci_high"]
    written = pd.read_csv(tmp_path / "h" / "corpus.csv")
    assert written["value"].tolist() == pytest.approx(human["value"].tolist())
    per_example = pd.read_csv(tmp_path / "h" / "per_example.csv")
    assert len(per_example) == SAMPLE and "bertscore_f1" in per_example


def test_examples_without_a_reference_are_counted_not_scored(tmp_path, esnli_sample, minilm_path):
    """HealthFC has claims with an empty en_explanation: the reference-based metrics leave them out
    (n counts the scored ones, NaN per example), the file is not an error."""
    import pandas as pd

    from explainbench.explanations.scoring import run

    hyps, _, _, _, sample = esnli_sample
    sample = [dict(r, explanations=[] if i % 10 == 0 else r["explanations"]) for i, r in enumerate(sample)]
    table = run(_score_job(tmp_path, sample, hyps, minilm_path)).set_index("metric")
    unscored = sum(1 for i in range(SAMPLE) if i % 10 == 0)
    for metric in ("bleu", "rougeL", "bertscore_f1", "mauve"):
        assert table.loc[metric, "n"] == SAMPLE - unscored, metric
    assert table.loc["states_label", "n"] == SAMPLE
    per_example = pd.read_csv(tmp_path / "per_example.csv")
    assert per_example["rougeL"].isna().sum() == unscored and per_example["states_label"].notna().all()


def test_mauve_against_every_reference(mauve_features, esnli_sample, minilm_path):
    """MAUVE's human side holds every reference of every example (e-SNLI: explanations 2 and 3 here);
    its bootstrap resamples examples, each with all its references."""
    from explainbench.engines import open_backend

    hyps, refs, shuffled, _, _ = esnli_sample
    with open_backend(encoder_spec(minilm_path), "minilm") as encoder:
        every = metrics.embed_features(encoder, [r for group in refs for r in group], "mean")
        model = metrics.embed_features(encoder, hyps, "mean")
        other = metrics.embed_features(encoder, shuffled[:40], "mean")
    owner = np.array([i for i, group in enumerate(refs) for _ in group])
    both = metrics.mauve_corpus(every, model, bootstrap=100, p_owner=owner)
    assert both["n"] == len(hyps) and len(every) == 2 * len(hyps)
    import mauve

    direct = mauve.compute_mauve(p_features=every, q_features=model, verbose=False).mauve
    assert both["value"] == pytest.approx(direct)  # mauve-text on all references, called directly
    assert both["ci_low"] <= both["value"] <= both["ci_high"]
    with pytest.raises(metrics.QualityError, match="need an example"):
        metrics.mauve_corpus(every, other, bootstrap=10, p_owner=owner)
