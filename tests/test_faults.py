"""Faults: a run killed mid-job leaves nothing a later run trusts, and the re-run finishes only
the remaining work; an engine that cannot start fails its own job with a clear message while
independent jobs finish (the default profile keeps going), and the run ends with a list of the
failed jobs and their logs. Real Snakemake runs in a temporary copy of the workflow."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import TRIGGERS
from explainbench.io import read_jsonl
from support.ops import copy_workflow, link_models, planned_jobs, run_snakemake, snakemake_command

pytestmark = pytest.mark.slow

MODEL = "resources/models/SmolLM2-135M-Instruct"   # its build (GGUF -> HF folder) takes tens of seconds
NLI = "results/data/demo_nli/summary.json"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("faults") / "repo", demo=True)


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
    (workdir / "ghost-model").mkdir(exist_ok=True)  # a folder, but no model in it
    config["models"]["ghost"] = {"path": "ghost-model", "kind": "causal", "backend": "vllm",
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
    assert "model 'ghost': cannot load a tokenizer from 'ghost-model' (models.ghost.path)" in text, text[-3000:]
    assert "cannot load a tokenizer from 'ghost-model'" in proc.stdout  # shown by --show-failed-logs


# ----------------------------------------------------------------------------- a job killed after some chunks
LABELS = ["entailment", "neutral", "contradiction"]
EXPLAINED = "results/explanations/mine/smollm2/0shot/seed0"


def _own_data(n_per_class: int = 10) -> str:
    """A small NLI file of the user's own (not the generated demo data), one JSON object a line."""
    rows = [{"id": f"{label[:3]}-{i}", "premise": f"A person number {i} is walking to the {label} shop .",
             "hypothesis": "A person is walking .", "label": label, "explanations": ["walking is walking ."]}
            for label in LABELS for i in range(n_per_class)]
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, smollm2_path):
    """A copy of the workflow with the real SmolLM2 (linked) explaining a dataset of the user's
    own: 30 pairs, 6 test, 6 dev, 18 train, in chunks of 2 (transformers, 8 new tokens)."""
    root = copy_workflow(tmp_path_factory.mktemp("own-run") / "repo")
    link_models(root, smollm2_path)
    (root / "mine.jsonl").write_text(_own_data())
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["datasets"] = {"mine": {"format": "jsonl", "path": "mine.jsonl", "labels": LABELS,
                                   "split": {"dev": 0.2, "test": 0.2, "seed": 0}}}
    config["models"] = {"smollm2": {**config["models"]["smollm2"], "backend": "transformers", "serve": False,
                                   "batch_size": 2}}
    config["explain"] = {"datasets": ["mine"], "explainers": ["smollm2"], "shots": [0], "max_new_tokens": 8,
                         "chunk_size": 2}
    config["quality"] = {}
    config["finetune"] = config["zeroshot"] = config["plr"] = {}
    (root / "config" / "own.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _descendants(pid: int) -> list[int]:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _generated(log_text: str) -> tuple[int, int, int]:
    """(generated now, engine calls, from earlier chunks), from the job's log."""
    match = re.search(r"0shot seed0: wrote \d+ explanations to \S+ \((\d+) generated now in (\d+) "
                      r"engine call\(s\), (\d+) from earlier chunks\)", log_text)
    assert match, f"no summary in the log:\n{log_text[-3000:]}"
    return tuple(int(g) for g in match.groups())


def test_a_job_killed_after_some_chunks_resumes_with_only_the_unfinished_examples(own_run):
    """Snakemake deletes a killed job's outputs; the chunks beside them survive, and the resume
    asks the engine only for the examples no chunk holds (30 examples, chunks of 2)."""
    root, target = own_run, f"{EXPLAINED}/explanations.jsonl"
    partial = root / f"{target}.partial"
    args = [target, "--cores", "1", "--configfile", "config/own.yaml", *TRIGGERS]
    proc = subprocess.Popen(snakemake_command() + args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        _wait_for(lambda: len(list(partial.glob("chunk-*.jsonl"))) >= 3 or proc.poll() is not None, 600,
                  "three finished chunks")
        assert proc.poll() is None, "the run ended before three chunks were written"
        jobs = [p for p in _descendants(proc.pid) if "explain.py" in _cmdline(p) and "-m snakemake" not in _cmdline(p)]
        assert jobs, [(_cmdline(p)) for p in _descendants(proc.pid)]
        for pid in jobs:  # the job dies (SIGKILL), Snakemake lives on and cleans up after its failed job
            os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Error in rule explain" in output, output[-3000:]
    assert not (root / target).exists(), "Snakemake removed the failed job's output"
    kept = [r for c in sorted(partial.glob("chunk-*.jsonl")) for r in read_jsonl(c)]
    assert 6 <= len(kept) < 30, "the finished chunks were lost, or the job had finished before it was killed"

    done = run_snakemake(root, args, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:]
    text = (root / "logs" / "explain" / "mine" / "smollm2" / "0shot" / "seed0.log").read_text()
    now, calls, before = _generated(text)
    assert (now, before) == (30 - len(kept), len(kept)) and calls == -(-now // 2), (now, calls, before)
    written = {r["id"]: r for r in read_jsonl(root / target)}
    assert all(written[r["id"]] == r for r in kept)  # kept, not generated again
    assert not partial.exists(), "the checkpoint outlived the finished job"


def test_bad_data_keeps_the_good_splits_and_an_identical_copy_reruns_nothing(own_run):
    root = own_run
    args = [f"{EXPLAINED}/explanations.jsonl", "--cores", "1", "--configfile", "config/own.yaml", *TRIGGERS]
    run_snakemake(root, args, timeout=900, check=True)  # everything done (after the kill test, or from scratch)
    splits = root / "results" / "data" / "mine"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in splits.iterdir()}
    good = (root / "mine.jsonl").read_bytes()
    time.sleep(1.1)

    (root / "mine.jsonl").write_bytes(good + b'{"id": "x", "premise": {"text": "A man"}, "hypothesis": "A man .", '
                                            b'"label": "neutral"}\n')
    bad = run_snakemake(root, args, timeout=600)
    assert bad.returncode != 0
    assert "mine.jsonl, row 31, field 'premise': expected text, got a JSON object" in bad.stdout, bad.stdout[-3000:]
    assert "Removing output files" not in bad.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in splits.iterdir()} == before

    (root / "mine.jsonl").write_bytes(good)  # the same bytes, a new mtime
    assert planned_jobs(root, args[:1], configfile="config/own.yaml", extra=TRIGGERS) == []
    (root / "mine.jsonl").write_bytes(good.replace(b"number 3 is", b"number three is"))  # new bytes
    assert "prepare_data" in {j.rule for j in planned_jobs(root, args[:1], configfile="config/own.yaml",
                                                           extra=TRIGGERS)}
    (root / "mine.jsonl").write_bytes(good)
