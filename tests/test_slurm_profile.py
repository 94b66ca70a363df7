"""profiles/slurm and the config's slurm section, checked without a scheduler: the resources
each job carries into snakemake-executor-plugin-slurm (which turns gpu=N into sbatch --gpus=N,
slurm_partition into -p). tests/test_slurm.py checks the sbatch calls on a real cluster."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from support.ops import copy_workflow, local_rules, planned_jobs, rule_table

ROOT = Path(__file__).resolve().parents[1]
GPU_RULES = {"explain", "score_explanations", "zeroshot", "embed", "finetune"}


def test_profile_polls_with_squeue_and_leaves_gpus_to_the_rules():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"  # no slurmdbd, no sacct
    assert isinstance(profile["jobs"], int) and profile["jobs"] > 0
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    # one task per GPU job; the GPU count itself comes from the rule (the model's tensor_parallel_size)
    assert set(profile["set-resources"]) == GPU_RULES
    for rule, resources in profile["set-resources"].items():
        assert resources == {"tasks_per_gpu": 0}, rule
    assert "gpu" not in profile["default-resources"]


def test_tables_and_plots_run_in_the_snakemake_process_and_the_rest_through_the_executor():
    """localrules are the rules of report.smk, the quantisation table and `all`: no sbatch (and no
    queue wait) for a job that reads small files; every rule that loads a model or data goes out."""
    rules = {r.name: r for r in rule_table(snakefile=ROOT / "Snakefile")}
    report = {name for name, r in rules.items() if r.file.name == "report.smk"}
    assert local_rules() == report | {"quantization_table", "all"}
    assert not local_rules() & (GPU_RULES | {"prepare_data", "plr_curve", "quantize", "generation_speed", "serve_llm"})


def test_gpu_rules_declare_a_gpu_resource():
    rules = {r.name: r for r in rule_table(ROOT / "workflow" / "rules")}
    for name in GPU_RULES:
        block = rules[name].file.read_text().split(f"rule {name}:")[1].split("\nrule ")[0]
        assert "gpu=" in block, f"rule {name} sets no gpu resource"


@pytest.mark.slow
def test_tensor_parallel_size_and_partition_reach_every_job(tmp_path):
    workdir = copy_workflow(tmp_path / "repo")
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["models"]["smollm2"]["tensor_parallel_size"] = 4
    config["slurm"] = {"partition": "gpu_a100", "gpu_rules_use_gpus": True}
    (workdir / "config" / "gpu.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(workdir, configfile="config/gpu.yaml")
    seen = set()
    for job in jobs:
        if job.rule == "all":
            continue
        assert job.resource("slurm_partition") == "gpu_a100", job
        model = dict(kv.split("=", 1) for kv in job.wildcards.split(", ") if "=" in kv).get("model")
        if job.rule in ("explain", "embed", "serve_llm") and model:
            assert job.resource("gpu") == ("4" if model == "smollm2" else "1"), job
            seen.add((job.rule, model))
        elif job.rule in ("zeroshot", "score_explanations"):  # they ask served smollm2's server, which holds the GPUs
            assert job.resource("gpu") == "0" and job.group, job
        elif job.rule == "finetune":
            assert job.resource("gpu") == "1", job
        elif job.rule not in GPU_RULES:
            assert job.resource("gpu") in (None, "0"), job
    assert ("embed", "smollm2") in seen and ("embed", "minilm") in seen and ("explain", "smollm2") in seen
    assert ("serve_llm", "smollm2") in seen

    # the default config: no GPUs anywhere, no partition (the cluster's default is used)
    for job in planned_jobs(workdir):
        assert job.resource("gpu") in (None, "0"), job
        assert job.resource("slurm_partition") is None, job
