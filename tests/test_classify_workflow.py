"""A real, small Snakemake run of the finetune and zeroshot rules in a temporary copy of the repo:
conditions and seeds land in their own cache paths, and a second run has nothing to do."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from support.ops import copy_workflow, run_snakemake

CONFIG = {
    "datasets": {"demo_nli": {"format": "jsonl", "path": "resources/demo/demo_nli.jsonl", "task": "nli",
                              "labels": ["entailment", "neutral", "contradiction"], "sample_per_class": 12,
                              "split": {"dev": 0.15, "test": 0.25, "seed": 0}}},
    "models": {"smollm2": {"path": "resources/models/SmolLM2-135M-Instruct", "kind": "causal",
                           "backend": "transformers", "dtype": "float32", "max_model_len": 1024},
               "minilm": {"path": "resources/models/all-MiniLM-L6-v2", "kind": "encoder",
                          "backend": "transformers", "dtype": "float32", "max_model_len": 256}},
    "explain": {"datasets": [], "explainers": []},
    "finetune": {"datasets": ["demo_nli"], "encoders": ["minilm"], "seeds": [0, 1], "conditions": ["none", "human"],
                 "epochs": 1, "batch_size": 16, "max_length": 64, "learning_rate": 5.0e-5},
    "zeroshot": {"datasets": ["demo_nli"], "classifiers": ["smollm2"], "conditions": ["none", "human"]},
    "report": {"bootstrap": 50},
}
FINETUNE = [f"results/finetune/demo_nli/fold0/minilm/{c}/seed{s}/metrics.json" for c in ("none", "human") for s in (0, 1)]
ZEROSHOT = [f"results/zeroshot/demo_nli/fold0/smollm2/{c}/metrics.json" for c in ("none", "human")]


def snakemake(repo: Path, *args: str):
    """Snakemake on 2 cores in ``repo``, with this interpreter's folder first on PATH (the jobs' Python)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return run_snakemake(repo, ["--cores", "2", *args], timeout=900, env={"PATH": path})


@pytest.mark.slow
def test_conditions_and_seeds_are_cached_and_a_second_run_does_nothing(tmp_path, minilm_path, smollm2_path):
    pytest.importorskip("snakemake")
    repo = copy_workflow(tmp_path / "repo")
    (repo / "resources").mkdir(exist_ok=True)
    (repo / "resources" / "models").symlink_to(minilm_path.parent, target_is_directory=True)
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))

    first = snakemake(repo, *FINETUNE, *ZEROSHOT)
    assert first.returncode == 0, first.stdout[-4000:]

    for target in FINETUNE:
        metrics = json.loads((repo / target).read_text())
        _, _, dataset, fold, encoder, condition, seed_dir, _ = target.split("/")
        assert (metrics["dataset"], metrics["classifier"], metrics["condition"], metrics["seed"], metrics["method"],
                metrics["fold"]) == (dataset, encoder, condition, int(seed_dir.removeprefix("seed")), "finetune", 0)
        preds = pd.read_csv(repo / target.replace("metrics.json", "predictions.csv"))
        assert len(preds) == metrics["n"] == 9
        log = (repo / "logs/finetune" / dataset / fold / encoder / condition / f"{seed_dir}.log").read_text()
        assert "dev accuracy" in log and "test accuracy" in log
    for target in ZEROSHOT:
        metrics = json.loads((repo / target).read_text())
        assert (metrics["condition"], metrics["seed"], metrics["method"]) == (target.split("/")[5], None, "zeroshot")
        assert metrics["n"] == 9 and metrics["n_invalid"] == 0
    # the human condition really saw the explanations, the none condition did not
    none_log = (repo / "logs/finetune/demo_nli/fold0/minilm/none/seed0.log").read_text()
    human_log = (repo / "logs/finetune/demo_nli/fold0/minilm/human/seed0.log").read_text()
    assert none_log.count("[SEP]") and "first training input" in none_log
    first_input = lambda log: log.split("first training input: ")[1].splitlines()[0]  # noqa: E731
    assert first_input(none_log).count("[SEP]") == 1 and first_input(human_log).count("[SEP]") == 2
    assert not list((repo / "results/finetune").rglob("checkpoint"))

    second = snakemake(repo, "-n", *FINETUNE, *ZEROSHOT)
    assert second.returncode == 0, second.stdout[-4000:]
    assert "Nothing to be done" in second.stdout, second.stdout[-3000:]
