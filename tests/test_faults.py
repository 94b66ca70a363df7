"""Faults: a run killed mid-job leaves nothing a later run trusts, and the re-run finishes only
the remaining work; an engine that cannot start fails its own job with a clear message while
independent jobs finish (the default profile keeps going), and the run ends with a list of the
failed jobs and their logs. Real Snakemake runs in a temporary copy of the workflow."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml

from support.ops import copy_workflow, planned_jobs, run_snakemake, snakemake_command

pytestmark = pytest.mark.slow

MODEL = "resources/models/SmolLM2-135M-Instruct"   # its build (GGUF -> HF folder) takes tens of seconds
NLI = "results/data/demo_nli/summary.json"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("faults") / "repo")


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_run_killed_mid_job_leaves_nothing_trusted_and_resumes(workdir):
    log = workdir / "logs" / "demo_model" / "SmolLM2-135M-Instruct.log"
    proc = subprocess.Popen(snakemake_command() + ["--cores", "2", NLI, MODEL], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        # the data job finishes; the model build has started (its log exists) but not finished
        _wait_for(lambda: (workdir / NLI).exists() and log.exists(), 240, "the data job and the model build")
        time.sleep(3)
        assert proc.poll() is None and not (workdir / MODEL / "config.json").exists(), \
            "the model build finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run: Snakemake and the job it started
        proc.wait()
    assert not (workdir / MODEL / "config.json").exists()

    nli_mtime = (workdir / NLI).stat().st_mtime_ns
    jobs = planned_jobs(workdir, [NLI, MODEL])
    assert [(j.rule, j.output) for j in jobs] == [("demo_model", MODEL)], jobs  # the finished data jobs stay done
    assert "Missing output" in jobs[0].reason or "Incomplete" in jobs[0].reason

    # a killed run leaves its lock behind, as after a power loss: the user unlocks, then re-runs
    run_snakemake(workdir, ["--unlock", "--cores", "1"], timeout=300, check=True)
    done = run_snakemake(workdir, ["--cores", "2", NLI, MODEL], timeout=600)
    assert done.returncode == 0, done.stdout[-6000:]
    assert done.stdout.count("Finished jobid") == 1  # only the killed job ran again
    config = yaml.safe_load((workdir / MODEL / "config.json").read_text())
    assert config["model_type"] == "llama" and config["hidden_size"] == 576
    weights = sum(p.stat().st_size for p in (workdir / MODEL).glob("*.safetensors"))
    assert weights > 400e6, f"{weights} bytes of weights: a partial folder"
    assert not any((workdir / "resources" / "models").glob("*.partial"))
    assert (workdir / NLI).stat().st_mtime_ns == nli_mtime
    assert planned_jobs(workdir, [NLI, MODEL]) == []


def test_an_engine_that_cannot_start_fails_its_job_clearly_and_the_rest_finish(workdir):
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["models"]["ghost"] = {"path": "/nonexistent/ghost-model", "kind": "causal", "backend": "vllm",
                                 "dtype": "float32", "max_model_len": 512, "enforce_eager": True}
    (workdir / "config" / "ghost.yaml").write_text(yaml.safe_dump(config))
    broken = ["results/explanations/demo_nli/ghost/0shot/seed0/explanations.jsonl",
              "results/explanations/demo_nli/ghost/2shot/seed0/explanations.jsonl"]
    independent = "results/data/demo_sentiment/summary.json"

    # no --keep-going here: the workflow's default profile keeps going by itself
    proc = run_snakemake(workdir, [*broken, independent, "--cores", "2", "--configfile", "config/ghost.yaml"],
                         timeout=600)
    assert proc.returncode != 0
    assert "Error in rule explain" in proc.stdout
    assert (workdir / independent).exists(), "the independent job did not finish: the run did not keep going"
    assert not any((workdir / b).exists() for b in broken)
    # the run ends with the short list of failed jobs and their logs (Snakefile onerror)
    summary = proc.stdout[proc.stdout.index("explainbench: 2 failed job(s)"):]
    for shots in (0, 2):
        assert (f"  - explain -> results/explanations/demo_nli/ghost/{shots}shot/seed0/explanations.jsonl: "
                f"log logs/explain/demo_nli/ghost/{shots}shot/seed0.log") in summary
    job_log = workdir / "logs" / "explain" / "demo_nli" / "ghost" / "0shot" / "seed0.log"  # the listed log
    assert job_log.exists(), "the failed job's log is kept"
    text = job_log.read_text()
    assert "failed" in text and "Traceback" in text
    assert "path '/nonexistent/ghost-model' does not exist (models.ghost.path)" in text, text[-3000:]
    assert "path '/nonexistent/ghost-model' does not exist" in proc.stdout  # shown by --show-failed-logs
