"""G-Eval: the rubric file, the probability-weighted rating, and the real SmolLM2 judge through
vLLM (CPU) and transformers, which must agree."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ESNLI_LABELS, ROOT, causal_spec
from explainbench.data import load_records
from explainbench.explanations.geval import geval_prompt, geval_scores, load_geval_template, rating_scores, select_criteria
from explainbench.prompts import PromptError
from support.reference_scoring import sequence_logprobs

PROMPTS = ROOT / "config" / "prompts"
RATINGS = ["1", "2", "3", "4", "5"]


def test_rating_score_hand_computed_cases():
    ln = math.log
    logprobs = np.array([
        [ln(0.1)] * 5,                                        # uniform -> 3
        [-math.inf, -math.inf, -math.inf, -math.inf, ln(0.2)],  # all mass on "5" -> 5
        [ln(0.05), ln(0.05), -math.inf, -math.inf, ln(0.1)],  # renormalised 0.25, 0.25, 0, 0, 0.5 -> 3.25
        [ln(0.9), ln(0.1), -math.inf, -math.inf, -math.inf],  # 0.9 * 1 + 0.1 * 2 -> 1.1
    ])
    scores, mass = rating_scores(logprobs, RATINGS)
    np.testing.assert_allclose(scores, [3.0, 5.0, 3.25, 1.1])
    np.testing.assert_allclose(mass, [0.5, 0.2, 0.2, 1.0])
    assert np.isnan(rating_scores(np.full((1, 5), -math.inf), RATINGS)[0][0])


def test_the_rubric_file_renders_every_criterion(esnli_path):
    template = load_geval_template(str(PROMPTS), "esnli", "nli")
    assert select_criteria(template, None) == ["coherence", "consistency", "faithfulness", "relevance", "fluency"]
    record = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)[0]
    for name in template["criteria"]:
        messages = geval_prompt(template, name, record, "an explanation", ESNLI_LABELS)
        user = messages[-1]["content"]
        assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
        assert record["premise"] in user and record["hypothesis"] in user and f"Label: {record['label']}" in user
        assert "Explanation: an explanation" in user and template["criteria"][name]["name"] in user
        assert "1. " in user and "{" not in user


def test_bad_rubric_files_are_named(tmp_path):
    good = yaml.safe_load((PROMPTS / "nli" / "geval.yaml").read_text())
    (tmp_path / "mydata").mkdir()
    broken = dict(good, ratings=["low", "high"])
    (tmp_path / "mydata" / "geval.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(PromptError, match=r"mydata/geval.yaml, key 'ratings'"):
        load_geval_template(str(tmp_path), "mydata", "nli")
    broken = dict(good, criteria={"clarity": {"name": "Clarity", "steps": ["read"]}})
    (tmp_path / "mydata" / "geval.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(PromptError, match=r"criteria.clarity: missing key 'definition'"):
        load_geval_template(str(tmp_path), "mydata", "nli")
    template = load_geval_template(str(PROMPTS), "esnli", "nli")
    with pytest.raises(PromptError, match=r"unknown G-Eval criteria \['clarity'\] \(quality.geval.criteria\)"):
        select_criteria(template, ["coherence", "clarity"])


# ---------------------------------------------------------------------------------- real judges

CRITERIA = ["coherence", "faithfulness"]


@pytest.fixture(scope="module")
def judged(esnli_path):
    """Three real e-SNLI pairs: a human explanation for two, an unrelated sentence for the third."""
    records = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)[:3]
    explanations = [records[0]["explanations"][0], records[1]["explanations"][0], "I like green apples."]
    return records, explanations


def _judge(path: Path, backend: str, judged):
    from explainbench.engines import open_backend

    records, explanations = judged
    with open_backend(causal_spec(path, backend=backend), "smollm2") as judge:
        template = load_geval_template(str(PROMPTS), "esnli", "nli")
        scores = geval_scores(judge, template, records, explanations, criteria=CRITERIA, labels=ESNLI_LABELS)
        prompts = [geval_prompt(template, "coherence", r, e, ESNLI_LABELS) for r, e in zip(records, explanations)]
        fast = judge.label_logprobs(prompts, RATINGS)  # one pass a prompt: the ratings are one token each
        slow = sequence_logprobs(judge, prompts, RATINGS)  # one sequence a (prompt, rating): the reference
    return scores, fast, slow


@pytest.fixture(scope="module")
def transformers_judge(smollm2_path, judged):
    return _judge(smollm2_path, "transformers", judged)


@pytest.fixture(scope="module")
def vllm_judge(smollm2_path, judged):
    pytest.importorskip("vllm")
    return _judge(smollm2_path, "vllm", judged)


def _check_scores(scores, n):
    assert set(scores) == {"geval", *(f"geval_{c}" for c in CRITERIA)}
    for name, values in scores.items():
        assert values.shape == (n,) and np.all((values >= 1) & (values <= 5)), name
    np.testing.assert_allclose(scores["geval"], np.mean([scores[f"geval_{c}"] for c in CRITERIA], axis=0))


@pytest.mark.slow
def test_geval_with_transformers_judge(transformers_judge, judged):
    scores, fast, slow = transformers_judge
    _check_scores(scores, len(judged[0]))
    np.testing.assert_allclose(fast, slow, atol=1e-4)  # the one-pass path is the per-option path


@pytest.mark.slow
@pytest.mark.vllm
def test_geval_with_vllm_judge_agrees_with_transformers(vllm_judge, transformers_judge, judged):
    scores, fast, slow = vllm_judge
    _check_scores(scores, len(judged[0]))
    np.testing.assert_allclose(fast, slow, atol=1e-3)
    t_scores, t_fast, _ = transformers_judge
    np.testing.assert_allclose(fast, t_fast, atol=2e-3)
    for name in scores:
        np.testing.assert_allclose(scores[name], t_scores[name], atol=0.02, err_msg=name)
