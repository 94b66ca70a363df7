"""The pipeline on a real SLURM scheduler, through `--profile profiles/slurm` and sbatch.

Needs a running cluster (tools/slurm/start_local_cluster.sh, which .ci/run calls before
`make test`); skipped only when no scheduler answers. The default run itself is
conftest.default_run, shared with the report tests.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import SLURM_POLLING, TRIGGERS
from support.ops import local_rules, run_snakemake, scheduler_problem

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOBCOMP = Path("/var/log/slurm/jobcomp.log")  # tools/slurm: JobCompType=jobcomp/filetxt


@pytest.fixture(scope="module")
def cluster():
    problem = scheduler_problem()
    if problem:
        pytest.skip(problem)
    node = subprocess.run(["scontrol", "show", "node"], capture_output=True, text=True, check=True).stdout
    gres = re.search(r"Gres=gpu:(\d+)", node)
    return {"gpus": int(gres.group(1)) if gres else 0}


def _submissions(log: str) -> dict[str, str]:
    """SLURM job id -> the sbatch call that made it (from the executor's --verbose log). A group
    job (a served model's server and the jobs that ask it) is one submission, named by its group."""
    calls = re.findall(r"^sbatch call: (.*)$", log, re.M)
    ids = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: .*?/(?:rule|group)_([^/]+)/", log)
    by_name: dict[str, list[str]] = {}
    for call in calls:
        name = re.search(r"--comment rule_([A-Za-z0-9_.-]+?)(?:_wildcards_\S*)?\s", call).group(1)
        by_name.setdefault(name, []).append(call)
    out = {}
    for jobid, name in ids:
        out[jobid] = by_name[name].pop(0)
    return out


def _jobcomp(workdir: Path) -> dict[str, dict[str, str]]:
    """Finished jobs the controller recorded for this working directory: id -> fields."""
    if not JOBCOMP.exists():
        return {}
    jobs = {}
    for line in JOBCOMP.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            jobs[fields["JobId"]] = fields
    return jobs


def test_the_default_config_runs_to_the_end_through_sbatch(cluster, default_run):
    """conftest.default_run went through `--profile profiles/slurm`: every job of the default DAG
    was an sbatch to the configured partition, SLURM ran each to completion, and a second run
    submits nothing. (The report tests check what the run wrote.)"""
    assert default_run.executor == "slurm", "a scheduler answers now but did not when the run started"
    assert default_run.returncode == 0, default_run.output[-8000:]
    log, workdir, partition = default_run.output, default_run.root, default_run.partition

    # every job that computes something went through sbatch; the tables and plots (localrules) ran in
    # the Snakemake process (the default reads the shipped e-SNLI sample, so no demo_data job is in it)
    local = local_rules()
    planned = [j for j in default_run.planned if j.rule not in local]
    assert {j.rule for j in planned} >= {"prepare_data", "explain", "score_explanations", "finetune",
                                         "zeroshot", "embed", "plr_curve", "plr_explain"}
    assert {j.rule for j in default_run.planned if j.rule in local} >= {
        "quality_table", "classification_table", "plr_table", "plot_learning_curves"}
    # one sbatch a job, and one for a whole group (a served model's server and the jobs asking it)
    submitted = _submissions(log)
    assert len(submitted) == len([j for j in planned if not j.group]) + len({j.group for j in planned if j.group}), \
        log[-4000:]
    for call in submitted.values():
        assert f"-p {partition}" in call, call
        assert "--gpus" not in call, call  # gpu_rules_use_gpus is false by default
    assert len(list((workdir / "logs" / "slurm").rglob("*.log"))) == len(submitted)
    finished = _jobcomp(workdir)
    assert set(submitted) <= set(finished), f"submitted {sorted(submitted)}, SLURM recorded {sorted(finished)}"
    for jobid in submitted:
        assert finished[jobid]["JobState"] == "COMPLETED", finished[jobid]
        assert finished[jobid]["Partition"] == partition
    # the rules' own logs were written by the jobs
    assert "esnli" in (workdir / "logs" / "prepare_data" / "esnli.log").read_text()
    assert (workdir / "results" / "tables" / "classification.csv").exists()

    # a second run has nothing to submit
    again = default_run.snakemake(timeout=300)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "Nothing to be done" in again.stdout
    assert "sbatch call" not in again.stdout


def test_tensor_parallel_size_sets_the_gpus_a_job_asks_for(cluster, default_run):
    """A tp=4 model's jobs ask SLURM for 4 GPUs, a tp=1 model's for 1 (gpu_rules_use_gpus: true)."""
    workdir = default_run.root  # its data stage is done
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    encoder = dict(config["models"]["minilm"])
    config["models"]["big"] = {**encoder, "tensor_parallel_size": 4}
    config["models"]["small"] = {**encoder, "tensor_parallel_size": 1}
    config["slurm"] = {"gpu_rules_use_gpus": True}
    (workdir / "config" / "slurm_gpu.yaml").write_text(yaml.safe_dump(config))
    dataset = config["plr"]["datasets"][0]
    targets = [f"results/embeddings/{dataset}/big/embeddings.npz", f"results/embeddings/{dataset}/small/embeddings.npz"]

    # targets first: --rerun-triggers takes every word after it
    proc = run_snakemake(workdir, [*targets, "--profile", "profiles/slurm", "--configfile", "config/slurm_gpu.yaml",
                                   "--keep-going", *SLURM_POLLING, *TRIGGERS], timeout=900)
    by_model = {}
    for call in re.findall(r"^sbatch call: (.*)$", proc.stdout, re.M):
        model = re.search(r"--comment rule_embed_wildcards_\S*?(big|small)\b", call)
        if model:
            by_model[model.group(1)] = call
    assert set(by_model) == {"big", "small"}, proc.stdout[-6000:]
    assert "--gpus=4" in by_model["big"] and "--gpus=1" in by_model["small"]
    # one task per job however many GPUs (vLLM starts its own workers): no --ntasks-per-gpu
    assert "--ntasks-per-gpu" not in by_model["big"]

    if cluster["gpus"] >= 4:
        # the scheduler granted them: the job record shows 4 GPUs for "big"
        jobids = dict((m, j) for j, m in re.findall(r"SLURM jobid (\d+) \(log: \S*rule_embed/\S*?(big|small)", proc.stdout))
        assert set(jobids) == {"big", "small"}, proc.stdout[-4000:]
        shown = subprocess.run(["scontrol", "show", "job", jobids["big"]], capture_output=True, text=True).stdout
        assert "gres:gpu:4" in shown or "gres/gpu=4" in shown, shown
        shown_small = subprocess.run(["scontrol", "show", "job", jobids["small"]], capture_output=True, text=True).stdout
        assert "gres:gpu:1" in shown_small or "gres/gpu=1" in shown_small, shown_small
        assert proc.returncode == 0, proc.stdout[-6000:]
        assert (workdir / targets[0]).exists() and (workdir / targets[1]).exists()
    else:
        # a cluster without 4 GPUs refuses the tp=4 job at submission, naming the request
        assert "SLURM sbatch failed" in proc.stdout and "--gpus=4" in proc.stdout, proc.stdout[-4000:]
