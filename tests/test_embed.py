"""Prompt-wrapped embeddings: templates, the npz contract, engines agreeing, quantisation reaching the engine."""
from __future__ import annotations

import json

import numpy as np
import pytest

from explainbench.config import model_entry
from explainbench.engines import BackendError, load_backend, open_backend
from explainbench.files import Embeddings, EmbeddingError, check_against_splits, read_embeddings, write_embeddings
from explainbench.plr import embed
from explainbench.plr.embed import EmbedSettings, format_options, model_inputs, wrap_record
from explainbench.prompts import PromptError, load_template
from explainbench.workflow import rule_settings

from plr_support import (PROMPTS, SST2_LABELS, minilm_spec, smollm2_spec, smollm2_sst2, smollm2_transformers,
                         sst2_config, sst2_job, sst2_sample, sst2_template, write_splits)


# --------------------------------------------------------------------------- templates

def test_options_are_listed_like_a_question():
    assert format_options(["negative", "positive"]) == "negative or positive"
    assert format_options(["entailment", "neutral", "contradiction"]) == "entailment, neutral or contradiction"


def test_task_templates_wrap_text_and_pairs():
    cls = load_template(PROMPTS, "embed", "some_dataset", "classification")
    wrapped = wrap_record({"id": "1", "text": "a fine film .", "label": "pos"}, cls, ["neg", "pos"])
    assert wrapped == ('Here is a text: "a fine film ."\n'
                       "Question: Which of these labels fits the text: neg or pos?\nAnswer:")
    nli = load_template(PROMPTS, "embed", "some_dataset", "nli")
    wrapped = wrap_record({"id": "2", "premise": "A man sleeps.", "hypothesis": "A man is awake.", "label": "c"},
                          nli, ["entailment", "neutral", "contradiction"])
    assert wrapped.startswith('Here is a premise: "A man sleeps."\nHere is a hypothesis: "A man is awake."')
    assert wrapped.endswith("entailment, neutral or contradiction?\nAnswer:")


def test_dataset_template_overrides_the_task_one():
    tpl = load_template(PROMPTS, "embed", "sst2", "classification")
    assert tpl["__file__"].endswith("sst2/embed.yaml")
    assert "movie review" in wrap_record({"text": "dull ."}, tpl, SST2_LABELS)


def test_template_placeholder_without_a_value_names_the_file():
    nli = load_template(PROMPTS, "embed", "x", "nli")
    with pytest.raises(PromptError, match=r"nli/embed\.yaml.*'prompt'.*hypothesis"):
        wrap_record({"id": "1", "premise": "p"}, nli, ["a", "b"])


def embed_settings(**plr) -> dict:
    """Rule embed's settings under a config with these plr settings (the rest the schema's defaults)."""
    return rule_settings(sst2_config({"m": {"path": "-"}}, **plr), "embed")


def test_encoders_embed_plain_text_unless_asked():
    encoder = model_entry(path="-", kind="encoder", backend="transformers")
    causal = model_entry(path="-", kind="causal")
    enc = EmbedSettings.for_model(encoder, embed_settings(pooling="last"))
    assert (enc.wrap, enc.pooling) == (False, "mean")
    assert EmbedSettings.for_model(encoder, embed_settings(wrap_encoder_texts=True)).wrap
    causal = EmbedSettings.for_model(causal, embed_settings(pooling="mean", layer=-2))
    assert (causal.wrap, causal.pooling, causal.layer) == (True, "mean", -2)
    recs = [{"id": "1", "premise": "A dog runs.", "hypothesis": "An animal moves.", "label": "e"}]
    assert model_inputs(recs, None, ["e", "n"], wrap=False) == ["A dog runs. An animal moves."]


# --------------------------------------------------------------------------- the npz contract

def _toy(n_train=3, n_test=2, d=4):
    rng = np.random.default_rng(0)
    ids = [f"tr{i}" for i in range(n_train)] + [f"te{i}" for i in range(n_test)]
    return Embeddings(np.array(ids), np.array(["train"] * n_train + ["test"] * n_test),
                      np.array(["a", "b", "a", "b", "a"][: n_train + n_test]),
                      rng.normal(size=(n_train + n_test, d)).astype(np.float32), {"pooling": "last", "layer": -1})


def test_npz_round_trip_keeps_the_contract(tmp_path):
    emb = _toy()
    path = tmp_path / "e" / "embeddings.npz"
    write_embeddings(emb, path)
    with np.load(path, allow_pickle=False) as raw:  # the contract: plain arrays, no pickles
        assert set(raw.files) == {"ids", "split", "labels", "vectors", "meta"}
        assert raw["vectors"].dtype == np.float32 and raw["ids"].dtype.kind == "U"
        assert json.loads(str(raw["meta"]))["pooling"] == "last"
    back = read_embeddings(path)
    assert list(back.part("test").ids) == ["te0", "te1"]
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    assert not list(tmp_path.glob("e/.*tmp*"))  # no temporary file left behind


def test_bad_embedding_files_are_named(tmp_path):
    with pytest.raises(EmbeddingError, match="not found"):
        read_embeddings(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", ids=np.array(["a"]), vectors=np.zeros((1, 2), np.float32))
    with pytest.raises(EmbeddingError, match=r"partial\.npz: missing arrays \['labels', 'meta', 'split'\]"):
        read_embeddings(tmp_path / "partial.npz")
    emb = _toy()
    splits = {"train": [{"id": "tr0", "label": "a"}, {"id": "tr1", "label": "a"}, {"id": "tr2", "label": "a"}],
              "test": [{"id": "te0", "label": "b"}, {"id": "te1", "label": "a"}]}
    with pytest.raises(EmbeddingError, match=r"x\.npz: train row 1 \(id 'tr1'\), field 'label': 'b' in the embeddings"):
        check_against_splits(emb, splits, "x.npz")
    splits["train"][2]["id"] = "new"
    with pytest.raises(EmbeddingError, match="re-run rule embed"):
        check_against_splits(emb, splits, "x.npz")


def test_rule_embed_with_a_real_encoder_writes_train_and_test(tmp_path):
    """MiniLM on real SST-2 sentences, through the split files, as the rule runs it."""
    sample = sst2_sample()
    train, test = sample["train"][:12], sample["test"][:8]
    out = tmp_path / "embeddings.npz"
    # pooling is a causal LM's; encoders mean-pool. A model whose PLR is not explained (explain_models
    # []) gets the splits' rows only (test_plr covers the occluded texts of an explained one)
    config = sst2_config({"minilm": minilm_spec()}, pooling="last", explain_models=[])
    inputs = {**write_splits(tmp_path, {"train": train, "test": test}), "template": [], "model": [minilm_spec()["path"]]}
    embed.run(sst2_job("embed", config, "minilm", inputs, {"embeddings": str(out)}))
    emb = read_embeddings(out)
    assert emb.vectors.shape == (20, 384)
    assert list(emb.ids) == [r["id"] for r in train] + [r["id"] for r in test]
    assert list(emb.split) == ["train"] * 12 + ["test"] * 8
    assert list(emb.labels) == [r["label"] for r in train + test]
    assert emb.meta["pooling"] == "mean" and emb.meta["wrapped"] is False and emb.meta["dataset"] == "sst2"
    # mean-pooled MiniLM: the same sentence embedded alone gives the same vector (no batch effects)
    with open_backend(minilm_spec(), "minilm") as backend:
        alone = backend.embed([test[0]["text"]], pooling="mean")
    assert np.allclose(alone[0], emb.part("test").vectors[0], atol=1e-4)


# --------------------------------------------------------------------------- engines

@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_pooling_and_transformers_give_the_same_vectors():
    emb, _, _ = smollm2_sst2()  # vLLM pooling runner, last token, final layer
    records = sst2_sample()["test"][:12]
    texts = model_inputs(records, sst2_template(), SST2_LABELS, wrap=True)
    hf = smollm2_transformers().embed(texts, pooling="last", layer=-1)
    vl = emb.part("test").vectors[:12]
    assert list(emb.part("test").ids[:12]) == [r["id"] for r in records]
    cos = (hf * vl).sum(1) / np.linalg.norm(hf, axis=1) / np.linalg.norm(vl, axis=1)
    assert cos.min() > 0.99, cos
    # and they are not trivially similar: different sentences are further apart than the engines are
    other = (hf[0] * vl[1]).sum() / np.linalg.norm(hf[0]) / np.linalg.norm(vl[1])
    assert other < cos.min()


@pytest.mark.slow
def test_layer_and_mean_pooling_are_configurable_with_transformers():
    texts = model_inputs(sst2_sample()["test"][:4], sst2_template(), SST2_LABELS, wrap=True)
    backend = smollm2_transformers()
    last = backend.embed(texts, pooling="last", layer=-1)
    mean = backend.embed(texts, pooling="mean", layer=-1)
    middle = backend.embed(texts, pooling="last", layer=15)
    assert last.shape == mean.shape == middle.shape == (4, 576)
    assert not np.allclose(last, mean) and not np.allclose(last, middle)
    # each text's vector does not depend on what it is batched with (left padding handled)
    np.testing.assert_allclose(backend.embed(texts[:1], pooling="mean", layer=-1)[0], mean[0], rtol=1e-3, atol=1e-3)


@pytest.mark.vllm
def test_vllm_gives_the_final_layer_only():
    pytest.importorskip("vllm")
    with open_backend(smollm2_spec("vllm"), "smollm2") as backend, pytest.raises(BackendError, match="final layer only"):
        backend.embed(["x"], pooling="last", layer=3)


# --------------------------------------------------------------------------- quantisation

def test_transformers_takes_no_quantization_and_names_the_model_key():
    """bitsandbytes is in no env: the transformers backend refuses any quantisation before loading,
    naming models.<name>.quantization and the llama.cpp way (a spec built by hand, past the config check)."""
    for quant in ("bitsandbytes-4bit", "bitsandbytes-8bit", "gptq"):
        backend = load_backend({**smollm2_spec("transformers"), "quantization": quant}, "smol-q")
        with pytest.raises(BackendError, match=rf"models\.smol-q\.quantization: '{quant}' is not available with "
                                               r"backend transformers.*backend llamacpp .* q8_0 or q4_0"):
            backend.model


@pytest.mark.vllm
def test_vllm_quantization_is_passed_to_the_engine():
    """vLLM receives the setting and judges it: fp8 needs a 16-bit dtype, so float32 is refused by vLLM itself."""
    pytest.importorskip("vllm")
    with open_backend(smollm2_spec("vllm", quantization="fp8"), "smol-fp8") as backend, \
            pytest.raises(BackendError, match=r"(?s)model 'smol-fp8'.*quantization 'fp8' \(models\.smol-fp8\.quantization\)"
                                              r".*not supported for quantization method fp8"):
        backend.embed(["a sentence"], pooling="last")
