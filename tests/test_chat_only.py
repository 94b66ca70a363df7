"""GPT-4o mini as a zero-shot classifier (and G-Eval judge): a chat-only OpenAI-compatible model.

The server here answers only ``/v1/chat/completions`` (with ``logprobs`` + ``top_logprobs``) and
404 on ``/v1/completions``, as OpenAI does for its chat models; behind it is the real
SmolLM2-135M-Instruct (tests/support/chat_server.py). The rule's own ``run(job)`` classifies real
e-SNLI pairs through it, and every label probability it reports is checked against the model's
first-token distribution computed here, independently.
"""
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ESNLI_LABELS, causal_spec
from explainbench.classify import zeroshot
from explainbench.classify.zeroshot import build_prompts, verbalizers
from explainbench.config import model_entry, validate_config
from explainbench.data import load_records
from explainbench.engines import BackendError, load_backend
from explainbench.explanations.geval import geval_scores, load_geval_template
from explainbench.io import write_jsonl
from explainbench.prompts import load_template
from explainbench.splits import sample_per_class
from explainbench.workflow import Job, rule_settings
from support.chat_server import ChatOnlyServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts"
SERVED = "gpt-4o-mini"


@pytest.fixture(scope="module")
def hf(smollm2_path):
    backend = load_backend(causal_spec(smollm2_path, backend="transformers", batch_size=4), "smollm2")
    yield backend
    backend.close()


@pytest.fixture()
def server(hf):
    with ChatOnlyServer(hf, SERVED) as server:
        yield server


def chat_spec(base: str, **extra) -> dict:
    return model_entry(**{"path": SERVED, "backend": "openai", "api_base": base, "chat_template": True,
                          "max_concurrency": 2, "max_model_len": 2048, **extra})


@pytest.fixture(scope="module")
def pairs(esnli_path):
    return sample_per_class(load_records(esnli_path, format="esnli", labels=ESNLI_LABELS), 4, 0)


def top_mass(logp, tokenizer, option: str, k: int = 20) -> float:
    """log of the summed probability of the top-k tokens that begin ``option`` (and no other label)."""
    values, ids = logp.topk(k)
    mass = 0.0
    for v, i in zip(values.tolist(), ids.tolist()):
        t = tokenizer.decode([i]).strip().lower()
        hits = [w for w in ESNLI_LABELS if t and w.startswith(t)]
        if hits == [option]:
            mass += math.exp(v)
    return math.log(mass) if mass > 0 else -math.inf


def test_zero_shot_rule_reads_labels_from_chat_logprobs_only(tmp_path, server, hf, pairs):
    examples = tmp_path / "examples.jsonl"
    write_jsonl([dict(r, test_fold=0, dev_folds=[], demonstration=None) for r in pairs], examples)
    cfg = validate_config({"datasets": {"esnli": {"format": "esnli", "path": "-", "labels": ESNLI_LABELS}},
                           "models": {"gpt-4o-mini": chat_spec(server.base)}, "prompts_dir": str(PROMPTS),
                           "report": {"bootstrap": 50}})
    out = tmp_path / "results"
    job = Job(input={"examples": str(examples), "explanations": []},
              output={"metrics": str(out / "metrics.json"), "predictions": str(out / "predictions.csv")}, config=cfg,
              wildcards={"dataset": "esnli", "model": "gpt-4o-mini", "condition": "none", "fold": "0"},
              settings=rule_settings(cfg, "zeroshot"), rule="zeroshot")
    metrics = zeroshot.run(job)
    # one chat request per example, never the completions endpoint
    assert server.requests == {("POST", "/v1/chat/completions"): len(pairs)}
    assert metrics["n"] == len(pairs) == 12 and metrics["answer_read_from"].startswith("the first answer token")
    preds = pd.read_csv(out / "predictions.csv")
    # the probabilities it reports are the model's own first-token distribution, read independently here
    backend = load_backend(chat_spec(server.base), SERVED)
    assert backend.chat_only
    template = load_template(PROMPTS, "classify", "esnli", "nli")
    prompts = build_prompts(backend, pairs, template, verbalizers(ESNLI_LABELS, None), False)
    assert prompts[0][-1]["content"].endswith("\n\nAnswer:") and prompts[0][-1]["role"] == "user"
    for prompt, (_, row) in zip(prompts, preds.iterrows()):
        logp, _ = server.first_token_logprobs(prompt)
        want = np.array([top_mass(logp, hf.tokenizer, w) for w in ESNLI_LABELS])
        if not np.isfinite(want).any():
            assert pd.isna(row["pred"]) or row["pred"] == ""
            continue
        probs = np.exp(want - want[np.isfinite(want)].max())
        probs /= probs.sum()
        np.testing.assert_allclose(row[[f"score_{w}" for w in ESNLI_LABELS]].to_numpy(float), probs, atol=2e-4)
        assert row["pred"] == ESNLI_LABELS[int(np.argmax(probs))]
    backend.close()


def test_the_completions_endpoint_is_404_and_never_needed(server, pairs):
    req = urllib.request.Request(f"{server.base}/completions", data=json.dumps({"model": SERVED, "prompt": "Hi"}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 404
    # a model configured for the completions endpoint (chat_template: false) fails on this server, clearly
    plain = load_backend(chat_spec(server.base, chat_template=False, max_retries=0), SERVED)
    assert not plain.chat_only
    with pytest.raises(BackendError, match=r"completions answered HTTP 404"):
        plain.label_logprobs(["Premise: a. Hypothesis: b. Answer:"], [" entailment", " neutral"])
    plain.close()
    # the chat-only model sends a plain string as one user message, to the chat endpoint
    chat = load_backend(chat_spec(server.base), SERVED)
    text = chat.generate(["Say one word."], max_new_tokens=4)[0]
    assert text.completion_tokens > 0
    scores = chat.label_logprobs(["Is a dog an animal? Answer yes or no."], ["yes", "no"])
    assert scores.shape == (1, 2) and np.isfinite(scores).any()
    assert server.requests[("POST", "/v1/completions")] == 2  # the two above; none from the chat-only model
    chat.close()


def test_g_eval_judge_through_the_chat_endpoint(server, pairs):
    judge = load_backend(chat_spec(server.base), SERVED)
    template = load_geval_template(str(PROMPTS), "esnli", "nli")
    scores = geval_scores(judge, template, pairs[:3], [r["explanations"][0] for r in pairs[:3]],
                          criteria=["fluency"], labels=ESNLI_LABELS)
    assert np.isfinite(scores["geval_fluency"]).all() and ((1 <= scores["geval"]) & (scores["geval"] <= 5)).all()
    assert set(server.requests) == {("POST", "/v1/chat/completions")}
    judge.close()
