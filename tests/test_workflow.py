"""Snakemake itself: dry runs of both configs show every stage; the data stage runs for real."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.ops import copy_workflow as copy_workflow_with

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
STAGES = {"prepare_data", "explain", "score_explanations", "finetune", "zeroshot",
          "embed", "plr_curve", "plr_explain", "quality_table", "classification_table", "plr_table"}


def job_counts(output: str) -> dict[str, int]:
    block = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m[1] != "total"}


def dry_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(SNAKEMAKE + ["-n", "--forceall", "--nolock", "--cores", "1", *args],
                          cwd=cwd, capture_output=True, text=True)


def test_default_config_dry_run_has_every_stage():
    result = dry_run()
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    assert STAGES <= set(counts), f"missing stages: {STAGES - set(counts)}"
    # 1 dataset x 1 explainer x 1 shot setting (each job explains every example), scored on fold 0's test split
    assert counts["explain"] == 1 and counts["score_explanations"] == 1
    assert "results/quality/esnli/fold0/smollm2/2shot/seed0/corpus.csv" in result.stdout
    # none, human and the LLM's explanation: a fine-tuning job and a zero-shot job each
    assert counts["finetune"] == 3 and counts["zeroshot"] == 3


def test_paper_config_dry_run_is_the_full_grid():
    result = dry_run("--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    assert "demo_data" not in counts  # the paper config alone, not merged into the default
    # 2 datasets x 4 explainers x 2 shot settings (esnli 0/5, healthfc 0/2); each job explains every example
    assert counts["explain"] == 16
    # scored per fold: 2 datasets x 5 folds x 4 explainers x 2 shot settings
    assert counts["score_explanations"] == 80
    # 2 datasets x 5 folds x 4 encoders x (none + human + 8 LLM conditions + their 8 masked twins) x 1 seed
    assert counts["finetune"] == 720
    assert "results/finetune/esnli/fold4/roberta-base/llm-gemma-2-9b-5shot-masked/seed0/metrics.json" in result.stdout
    assert "results/finetune/healthfc/fold0/bert-base/llm-llama-3-70b-2shot/seed0/metrics.json" in result.stdout
    # shots per dataset: HealthFC is explained with 0 and 2 demonstrations, e-SNLI with 0 and 5
    assert not re.search(r"healthfc/fold\d/[^/\s]+/llm-[^/\s]+-5shot", result.stdout)
    assert not re.search(r"esnli/fold\d/[^/\s]+/llm-[^/\s]+-2shot", result.stdout)
    assert re.search(r"results/explanations/healthfc/gpt-4o-mini/2shot/seed0/explanations.jsonl", result.stdout)


def test_bad_config_stops_snakemake_with_the_key_named(tmp_path):
    bad = (ROOT / "config" / "config.yaml").read_text().replace("dtype: float32", "dtype: float33", 1)
    (tmp_path / "bad.yaml").write_text(bad)
    result = dry_run("--configfile", str(tmp_path / "bad.yaml"))
    assert result.returncode != 0
    # the key, its file and line, and what is allowed
    assert re.search(r"bad\.yaml: invalid config:\s+config key models\.smollm2\.dtype \(line \d+\): 'float33' is not "
                     r"allowed; allowed values", result.stderr + result.stdout), result.stderr[-2000:]


def copy_workflow(dest: Path) -> Path:
    """A runnable copy of the workflow on the template-data config (demo models linked, not copied)."""
    copy_workflow_with(dest, ROOT, demo=True)
    if (ROOT / "resources" / "models").exists():
        (dest / "resources" / "models").symlink_to(ROOT / "resources" / "models")
    return dest


@pytest.mark.slow
def test_data_stage_runs_and_second_run_does_nothing(tmp_path):
    work = copy_workflow(tmp_path)
    targets = ["results/data/demo_nli/summary.json", "results/data/demo_sentiment/summary.json"]
    run = subprocess.run(SNAKEMAKE + ["--cores", "2", *targets], cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    summary = json.loads((work / targets[0]).read_text())
    assert summary["test"]["n"] == 60 and summary["train"]["n"] + summary["dev"]["n"] == 180
    assert set(summary["test"]["labels"]) == {"entailment", "neutral", "contradiction"}
    assert (work / "logs" / "prepare_data" / "demo_nli.log").read_text().strip()
    again = subprocess.run(SNAKEMAKE + ["-n", "--cores", "2", *targets], cwd=work, capture_output=True, text=True)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_script_logging_survives_a_library_that_reconfigures_logging(tmp_path):
    """vLLM calls logging.config.dictConfig when its engine starts, which closes every handler:
    the rule's log must still get the lines that follow (progress, results, tracebacks)."""
    import logging
    import logging.config

    from explainbench.workflow import script_logging

    log_file = tmp_path / "logs" / "job.log"
    log_file.parent.mkdir()
    log_file.write_text("left by an earlier run\n")
    with pytest.raises(RuntimeError):
        with script_logging(log_file):
            logging.getLogger("explainbench.test").info("before the engine")
            logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
            logging.getLogger("explainbench.test").info("after the engine")
            raise RuntimeError("the job fails")
    text = log_file.read_text()
    assert "earlier run" not in text
    assert "before the engine" in text and "after the engine" in text
    assert "failed:" in text and "RuntimeError: the job fails" in text


def test_failed_jobs_are_listed_from_snakemakes_log():
    """The onerror summary reads Snakemake's own error blocks, local and SLURM (the plugin adds the
    job's SLURM log to the log line), each job once."""
    from explainbench.workflow import failed_jobs, failure_summary

    text = """Select jobs to execute...
Error in rule finetune:
    message: SLURM-job '41' failed, SLURM status is: 'FAILED'. For further error details see the cluster/cloud log and the log files of the involved rule(s).
    jobid: 12
    input: results/data/esnli/examples.jsonl
    output: results/finetune/esnli/fold3/minilm/human/seed0/metrics.json, results/finetune/esnli/fold3/minilm/human/seed0/predictions.csv
    log: logs/finetune/esnli/fold3/minilm/human/seed0.log, .snakemake/slurm_logs/rule_finetune/41.log (check log file(s) for error details)
Error in rule explain:
    message: None
    jobid: 3
    output: results/explanations/healthfc/smollm2/2shot/seed0/explanations.jsonl
    log: logs/explain/healthfc/smollm2/2shot/seed0.log (check log file(s) for error details)
    shell:
        None
        (command exited with non-zero exit code)
Removing output files of failed job explain since they might be corrupted:
Error in rule explain:
    message: None
    jobid: 3
    output: results/explanations/healthfc/smollm2/2shot/seed0/explanations.jsonl
    log: logs/explain/healthfc/smollm2/2shot/seed0.log (check log file(s) for error details)
Exiting because a job execution failed. Look above for error messages
"""
    jobs = failed_jobs(text)
    assert [(j["rule"], j["jobid"]) for j in jobs] == [("finetune", "12"), ("explain", "3")]
    assert jobs[0]["logs"] == ["logs/finetune/esnli/fold3/minilm/human/seed0.log",
                               ".snakemake/slurm_logs/rule_finetune/41.log"]
    assert jobs[0]["output"] == "results/finetune/esnli/fold3/minilm/human/seed0/metrics.json"
    assert jobs[0]["message"].startswith("SLURM-job '41' failed") and jobs[1]["message"] == ""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as fh:
        fh.write(text)
    summary = failure_summary([fh.name, "/nonexistent.log"])
    assert summary.splitlines()[0].startswith("explainbench: 2 failed job(s)")
    assert ("  - finetune -> results/finetune/esnli/fold3/minilm/human/seed0/metrics.json: log "
            "logs/finetune/esnli/fold3/minilm/human/seed0.log, .snakemake/slurm_logs/rule_finetune/41.log") in summary
    assert "failed before any job did" in failure_summary(["/nonexistent.log"])
