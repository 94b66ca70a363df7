"""Zero-shot classification from label-word log-probabilities: the real SmolLM2 through vLLM on
CPU and through transformers, on real e-SNLI pairs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import causal_spec
from explainbench.classify.conditions import attach_explanations
from explainbench.classify.zeroshot import (Settings, ZeroShotError, answer_options, build_prompts, classify,
                                            classify_job, decide, options_text, verbalizers)
from explainbench.config import validate_config
from explainbench.data import load_records
from explainbench.engines import open_backend
from explainbench.io import write_jsonl
from explainbench.prompts import load_template, template_path
from explainbench.splits import sample_per_class
from explainbench.workflow import Job, rule_settings

REPO = Path(__file__).resolve().parents[1]
PROMPTS = REPO / "config" / "prompts"
LABELS = ["entailment", "neutral", "contradiction"]


# ----------------------------------------------------------------------------- pure parts

def test_verbalizers_default_to_label_names_and_are_checked():
    assert verbalizers(LABELS, None) == dict(zip(LABELS, LABELS))
    assert verbalizers(["negative", "positive"], {"positive": "great"}) == {"negative": "negative", "positive": "great"}
    with pytest.raises(ZeroShotError, match=r"zeroshot\.verbalizers\.esnli: unknown label\(s\) \['positve'\]"):
        verbalizers(["negative", "positive"], {"positve": "good"}, "esnli")
    with pytest.raises(ZeroShotError, match="share the word"):
        verbalizers(["negative", "positive"], {"negative": "Bad", "positive": "bad"})
    assert options_text(["a", "b", "c"]) == "a, b or c"


def test_decide_reads_the_argmax_and_reports_invalid_answers():
    scores = np.log(np.array([[0.6, 0.2, 0.1], [0.01, 0.02, 0.03], [0.1, 0.3, 0.2]]))
    scores[2, 1] = -math.inf
    scores = np.vstack([scores, [-math.inf] * 3, [math.nan] * 3])
    preds, probs, mass = decide(scores, LABELS, min_label_mass=0.05)
    # row 1: the label words hold 6% >= 5% (valid); rows 3 and 4: no finite score (invalid)
    assert preds == ["entailment", "contradiction", "contradiction", None, None]
    assert mass[:3] == pytest.approx([0.9, 0.06, 0.3])
    assert probs[0] == pytest.approx([6 / 9, 2 / 9, 1 / 9])
    preds, _, _ = decide(scores, LABELS, min_label_mass=0.1)
    assert preds[1] is None  # 6% of the probability on the label words: the model answered something else


def test_answer_spacing_follows_the_prefix():
    words = {"negative": "negative", "positive": "positive"}
    assert answer_options({"answer_prefix": "Label:"}, words) == [" negative", " positive"]
    assert answer_options({"answer_prefix": "Label:\n"}, words) == ["negative", "positive"]
    assert answer_options({}, words) == ["negative", "positive"]


def test_templates_exist_for_both_tasks_and_never_see_the_gold_label():
    for task in ("nli", "classification"):
        tpl = load_template(PROMPTS, "classify", "any_dataset", task)
        assert tpl["answer_prefix"] and "{explanation}" in tpl["user_with_explanation"]
        assert "{label}" not in json.dumps(tpl)


# ----------------------------------------------------------------------------- real engines

def spec(path, backend):
    return causal_spec(path, backend)


def zeroshot_config(esnli_path, smollm2_path, backend, **zeroshot) -> dict:
    """A validated config (schema defaults filled in) with e-SNLI, SmolLM2 and these zeroshot keys."""
    return validate_config({"datasets": {"esnli": {"format": "esnli", "path": str(esnli_path), "labels": LABELS}},
                            "models": {"smollm2": spec(smollm2_path, backend)}, "prompts_dir": str(PROMPTS),
                            "zeroshot": zeroshot, "report": {"bootstrap": 200}})


def default_settings() -> Settings:
    """The schema's zeroshot settings (every answer valid, 256 prompts per call)."""
    cfg = zeroshot_config("-", "-", "transformers")
    return Settings.from_settings(rule_settings(cfg, "zeroshot"))


@pytest.fixture(scope="module")
def esnli_sample(esnli_path):
    return sample_per_class(load_records(esnli_path, format="esnli", labels=LABELS), 10, 0)


@pytest.fixture(scope="module")
def vllm_backend(smollm2_path):
    pytest.importorskip("vllm")
    with open_backend(spec(smollm2_path, "vllm"), "smollm2") as backend:
        yield backend


@pytest.fixture(scope="module")
def vllm_runs(vllm_backend, smollm2_path, esnli_path, esnli_sample, tmp_path_factory):
    """Rule zeroshot's work for conditions none and human, on one vLLM engine (it starts once)."""
    root = tmp_path_factory.mktemp("zeroshot")
    test_path = root / "data" / "examples.jsonl"
    write_jsonl([dict(r, test_fold=0, dev_folds=[], demonstration=None) for r in esnli_sample], test_path)
    cfg = zeroshot_config(esnli_path, smollm2_path, "vllm", batch_size=16)
    runs = {}
    for condition in ("none", "human"):
        out = root / "results" / condition
        job = Job(input={"examples": test_path, "explanations": [],
                         "template": template_path(PROMPTS, "classify", "esnli", "nli")},
                  output={"metrics": out / "metrics.json", "predictions": out / "predictions.csv"}, config=cfg,
                  wildcards={"dataset": "esnli", "model": "smollm2", "condition": condition, "fold": "0"},
                  settings=rule_settings(cfg, "zeroshot"), rule="zeroshot")
        runs[condition] = (classify_job(vllm_backend, job), out)
    return runs


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("condition", ["none", "human"])
def test_vllm_gives_one_valid_label_per_example(vllm_runs, esnli_sample, condition):
    metrics, out = vllm_runs[condition]
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds["id"]) == [r["id"] for r in esnli_sample]
    assert preds["pred"].isin(LABELS).all() and metrics["n_invalid"] == 0
    assert metrics["n"] == len(esnli_sample) == 30
    assert (metrics["method"], metrics["condition"], metrics["seed"]) == ("zeroshot", condition, None)
    assert metrics["template"].endswith("nli/classify.yaml")
    assert 0 < metrics["mean_label_mass"] <= 1
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == pytest.approx(preds["correct"].mean())
    assert preds[[f"score_{l}" for l in LABELS]].sum(axis=1).round(3).eq(1).all()


@pytest.mark.slow
@pytest.mark.vllm
def test_transformers_gives_the_same_predictions_as_vllm(vllm_runs, smollm2_path, esnli_sample):
    template = load_template(PROMPTS, "classify", "esnli", "nli")
    records = attach_explanations(esnli_sample[:15], "none")  # half the sample: transformers is the slower engine
    with open_backend(spec(smollm2_path, "transformers"), "smollm2") as backend:
        preds, probs, _ = classify(backend, records, template, verbalizers(LABELS, None), default_settings(),
                                   with_explanation=False)
    vllm_preds = pd.read_csv(vllm_runs["none"][1] / "predictions.csv").iloc[:15]
    vllm_probs = vllm_preds[[f"score_{l}" for l in LABELS]].to_numpy()
    assert np.abs(probs - vllm_probs).max() < 1e-2
    top2 = np.sort(vllm_probs, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-2  # an exact near-tie may flip between engines
    assert clear.sum() >= 0.9 * len(records)
    assert [p for p, c in zip(preds, clear) if c] == [p for p, c in zip(vllm_preds["pred"], clear) if c]


@pytest.mark.slow
def test_prompt_ends_where_the_label_word_begins(smollm2_path, esnli_sample):
    template = load_template(PROMPTS, "classify", "esnli", "nli")
    records = attach_explanations(esnli_sample[:1], "human")
    with open_backend(spec(smollm2_path, "transformers"), "smollm2") as backend:
        prompt = build_prompts(backend, records, template, verbalizers(LABELS, None), with_explanation=True)[0]
    assert prompt.endswith("<|im_start|>assistant\nAnswer:")
    assert records[0]["explanation"] in prompt
