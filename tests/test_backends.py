"""The demo models build from their PyPI packages and load with transformers and with vLLM on CPU."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import causal_spec, encoder_spec
from explainbench.engines import BackendError, load_backend


def _esnli_prompts(esnli_path, n=3):
    rows = [json.loads(line) for line in esnli_path.read_text().splitlines()[:n]]
    return [[{"role": "user", "content": f"Premise: {r['premise']}\nHypothesis: {r['hypothesis']}\n"
              f"The label is {r['label']}. Explain in one sentence why."}] for r in rows]


def test_demo_model_folders_are_real(smollm2_path, minilm_path):
    config = json.loads((smollm2_path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["hidden_size"] == 576
    assert "quantization_config" not in config  # dequantised from the GGUF
    assert json.loads((minilm_path / "config.json").read_text())["num_hidden_layers"] == 6


@pytest.fixture(scope="module")
def hf_smollm2(smollm2_path):
    backend = load_backend(causal_spec(smollm2_path, backend="transformers"), "smollm2")
    yield backend
    backend.close()


@pytest.mark.slow
def test_transformers_smollm2_explains_and_scores(hf_smollm2, esnli_path):
    prompts = _esnli_prompts(esnli_path)
    gens = hf_smollm2.generate(prompts, max_new_tokens=40, seed=0)
    assert len(gens) == 3
    for g in gens:
        assert len(g.text.split()) >= 4 and g.prompt_tokens > 20 and 0 < g.completion_tokens <= 40
    # the option scored highest is the one greedy decoding writes first
    yes_no = [[{"role": "user", "content": "Is fire hot? Answer yes or no."}]]
    scores = hf_smollm2.label_logprobs(yes_no, ["Yes", "No"])
    first_word = hf_smollm2.generate(yes_no, max_new_tokens=2)[0].text
    assert scores.shape == (1, 2) and np.all(scores < 0)
    assert first_word.startswith(["Yes", "No"][int(np.argmax(scores[0]))])


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_on_cpu_matches_transformers(smollm2_path, hf_smollm2, esnli_path):
    pytest.importorskip("vllm")
    prompts = _esnli_prompts(esnli_path)
    vllm_backend = load_backend(causal_spec(smollm2_path, backend="vllm"), "smollm2")
    try:
        v_gens = vllm_backend.generate(prompts, max_new_tokens=24, seed=0)
        v_scores = vllm_backend.label_logprobs(prompts, [" yes", " no", "Because"])
    finally:
        vllm_backend.close()
    h_gens = hf_smollm2.generate(prompts, max_new_tokens=24, seed=0)
    h_scores = hf_smollm2.label_logprobs(prompts, [" yes", " no", "Because"])
    # greedy decoding: the same tokens from both engines (first words, to allow float ties late)
    for v, h in zip(v_gens, h_gens):
        assert v.text.split()[:5] == h.text.split()[:5]
        assert v.prompt_tokens == h.prompt_tokens
    np.testing.assert_allclose(v_scores, h_scores, atol=0.05)


@pytest.mark.slow
@pytest.mark.vllm
def test_two_vllm_backends_in_one_process_take_turns(smollm2_path):
    """On CPU vLLM runs its engine in this process, with its state in process globals: a second
    backend's engine closes the first's, and the first restarts with the same results."""
    pytest.importorskip("vllm")
    embedder = load_backend(causal_spec(smollm2_path, backend="vllm"), "embedder")
    writer = load_backend(causal_spec(smollm2_path, backend="vllm"), "writer")
    try:
        before = embedder.embed(["a gripping, beautifully acted film"], pooling="last")
        assert writer.generate(["Name a colour."], max_new_tokens=4)[0].completion_tokens > 0
        after = embedder.embed(["a gripping, beautifully acted film"], pooling="last")
        np.testing.assert_allclose(after, before, atol=1e-4)
        assert writer.generate(["Name a colour."], max_new_tokens=4)[0].completion_tokens > 0
    finally:
        embedder.close()
        writer.close()


def test_minilm_embeddings_rank_similar_texts_higher(minilm_path):
    backend = load_backend(encoder_spec(minilm_path), "minilm")
    vecs = backend.embed(["A man is playing a guitar.", "A person plays an instrument.",
                          "The stock market fell sharply today."], pooling="mean")
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    assert vecs.shape == (3, 384)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_missing_local_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match=r"model 'ghost': path '.*nowhere' does not exist \(models.ghost.path\)"):
        load_backend(causal_spec(tmp_path / "nowhere", backend="transformers"), "ghost")


def test_unknown_backend_is_named(smollm2_path):
    with pytest.raises(BackendError, match="unknown backend 'tgi'"):
        load_backend(causal_spec(smollm2_path), "smollm2", backend="tgi")
