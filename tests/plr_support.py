"""Shared, cached material for the PLR tests (test_plr.py, test_embed.py).

The expensive things (one vLLM pooling engine for SmolLM2-135M-Instruct, and the prompt-wrapped
embeddings of an SST-2 sample) are built once per test session and shared across both files
through this module's caches, so the engine starts once and each text is embedded once.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from conftest import causal_spec, encoder_spec
from explainbench.workflow import Job, rule_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MODELS_DIR = ROOT / "resources" / "models"
PROMPTS = ROOT / "config" / "prompts"
SST2_LABELS = ["negative", "positive"]
# The CI sample: 130 training sentences per class (enough for 128 per class) and 100 test sentences
# per class from SST-2 dev, all hash-seeded.
N_TRAIN_PER_CLASS = 130
N_TEST_PER_CLASS = 100


def sst2_dir() -> Path:
    path = SHARED_DATA / "sst2"
    if not (path / "dev.tsv").exists() or not (path / "train.tsv").exists():
        pytest.skip(f"real SST-2 data not found at {path} (tests expect ../shared/data beside the repo)")
    return path


def demo_model(name: str) -> Path:
    """A real demo model, built into resources/models on first use (CI starts from a clean clone)."""
    from explainbench.demo import DEMO_MODELS

    path = MODELS_DIR / name
    if not (path / "config.json").exists():
        try:
            DEMO_MODELS[name](path)
        except FileNotFoundError as err:
            pytest.skip(f"cannot build {name}: {err}")
    return path


def smollm2_spec(backend: str = "vllm", **extra) -> dict:
    return causal_spec(demo_model("SmolLM2-135M-Instruct"), backend, **extra)


def minilm_spec(**extra) -> dict:
    return encoder_spec(demo_model("all-MiniLM-L6-v2"), **{"batch_size": 64, **extra})


def sst2_config(models: dict[str, dict], **plr) -> dict:
    """A validated config: SST-2 (as the dataset ``sst2``), the given models, ``plr`` settings."""
    from explainbench.config import validate_config

    dataset = {"format": "tsv", "path": str(SHARED_DATA / "sst2" / "dev.tsv"), "task": "classification",
               "labels": SST2_LABELS, "columns": {"text": "content", "label": "label"}}
    return validate_config({"datasets": {"sst2": dataset}, "models": models, "prompts_dir": str(PROMPTS),
                            "plr": {"datasets": ["sst2"], "models": list(models), **plr}})


def sst2_job(rule: str, config: dict, model: str, input: dict, output: dict) -> Job:
    """A Job of ``rule`` for SST-2 and ``model``, as Snakemake would hand it to the stage."""
    return Job(input=input, output=output, config=config, wildcards={"dataset": "sst2", "model": model},
               settings=rule_settings(config, rule), rule=rule)


def write_splits(directory: Path, splits: dict[str, list[dict]]) -> dict[str, str]:
    """The examples file of ``splits`` (train and test: fold 0), as rule prepare_data writes it."""
    from explainbench.files import write_examples

    path = str(directory / "examples.jsonl")
    write_examples([dict(r, test_fold=0 if name == "test" else None, dev_folds=[], demonstration=None)
                    for name, rows in splits.items() for r in rows], path)
    return {"examples": path}


@functools.lru_cache(maxsize=None)
def sst2_sample() -> dict[str, list[dict]]:
    """SST-2: train sentences from train.tsv (label/sentence, CRLF), test sentences from dev.tsv (label/content)."""
    from explainbench.data import load_records
    from explainbench.splits import sample_per_class

    d = sst2_dir()
    train = load_records(d / "train.tsv", format="tsv", labels=SST2_LABELS, task="classification",
                         columns={"text": "sentence", "label": "label"}, id_prefix="sst2-train")
    dev = load_records(d / "dev.tsv", format="tsv", labels=SST2_LABELS, task="classification",
                       columns={"text": "content", "label": "label"}, id_prefix="sst2-dev")
    return {"train": sample_per_class(train, N_TRAIN_PER_CLASS, "ci"),
            "test": sample_per_class(dev, N_TEST_PER_CLASS, "ci")}


@functools.lru_cache(maxsize=None)
def sst2_template() -> dict:
    from explainbench.prompts import load_template

    return load_template(PROMPTS, "embed", "sst2", "classification")


class CountingBackend:
    """Wraps a real backend and counts embed() calls and texts (no behaviour changed)."""

    def __init__(self, backend):
        self.backend = backend
        self.name, self.spec = backend.name, backend.spec
        self.embed_calls = 0
        self.texts_embedded = 0

    def __getattr__(self, attribute):  # everything but embed() is the real backend's
        return getattr(self.backend, attribute)

    def embed(self, texts, **kwargs):
        self.embed_calls += 1
        self.texts_embedded += len(texts)
        return self.backend.embed(texts, **kwargs)


@functools.lru_cache(maxsize=None)
def smollm2_vllm():
    """One vLLM pooling engine for SmolLM2 per session, behind a call counter."""
    pytest.importorskip("vllm")
    from explainbench.engines import load_backend

    return CountingBackend(load_backend(smollm2_spec("vllm"), name="smollm2"))


@functools.lru_cache(maxsize=None)
def smollm2_transformers():
    from explainbench.engines import load_backend

    return load_backend(smollm2_spec("transformers"), name="smollm2-hf")


def smollm2_embedder(backend=None):
    """SmolLM2 embedding SST-2 as rule embed does: the wrapped prompt, last token, final layer."""
    from explainbench.plr.embed import EmbedSettings, Embedder

    settings = EmbedSettings(pooling="last", layer=-1, wrap=True, chunk_size=256)
    return Embedder(backend or smollm2_vllm(), settings, sst2_template(), SST2_LABELS)


@functools.lru_cache(maxsize=None)
def smollm2_sst2():
    """(Embeddings of the SST-2 sample via vLLM, embed calls, texts embedded) - computed once."""
    from explainbench.plr.embed import embed_splits

    backend = smollm2_vllm()
    before_calls, before_texts = backend.embed_calls, backend.texts_embedded
    emb = embed_splits(smollm2_embedder(backend), sst2_sample())
    return emb, backend.embed_calls - before_calls, backend.texts_embedded - before_texts


@functools.lru_cache(maxsize=None)
def minilm_sst2():
    """The SST-2 sample embedded by MiniLM as rule embed does with the default config (plain text, mean pooled)."""
    from explainbench.engines import open_backend
    from explainbench.plr.embed import EmbedSettings, Embedder, embed_splits

    config = sst2_config({"minilm": minilm_spec()})
    settings = EmbedSettings.for_model(config["models"]["minilm"], rule_settings(config, "embed"))
    with open_backend(config["models"]["minilm"], "minilm") as backend:
        return embed_splits(Embedder(backend, settings, None, SST2_LABELS), sst2_sample())
