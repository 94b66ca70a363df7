"""Study 2, the speed side of quantisation: generation tokens per second of every quantised
llama.cpp model of the PLR stage, measured in one job, one model after the other, on the same
prompts (a dataset's first test texts wrapped in its embed prompt), greedy, each prompt exactly
``speed_max_new_tokens`` new tokens (past the end token: a model that stops early would otherwise
spread its prompt's cost over fewer tokens). One job for all of them, so every model is timed on
the same machine under the same load; each model is loaded and warmed up (a short generation)
before its clock starts. Rule ``generation_speed`` writes ``results/speed/{dataset}/speed.csv``.
"""
from __future__ import annotations

import logging
import time

import pandas as pd

from ..engines import open_backend
from ..io import write_csv
from ..prompts import dataset_template
from ..splits import read_train_test
from ..workflow import quantized_models
from .embed import model_inputs

log = logging.getLogger(__name__)

SPEED_COLUMNS = ["dataset", "model", "quantization", "prompts", "max_new_tokens", "prompt_tokens",
                 "completion_tokens", "seconds", "tokens_per_s"]


def speed_prompts(job) -> list[str]:
    """The prompts every model generates from: the first ``speed_prompts`` test texts, wrapped."""
    spec = job.dataset_spec
    test = read_train_test(job.input["examples"])["test"]
    template = dataset_template(job.settings["prompts_dir"], "embed", job.dataset, spec)
    return model_inputs(test[:job.settings["speed_prompts"]], template, spec["labels"], wrap=True)


def measure(backend, prompts: list[str], max_new_tokens: int) -> dict:
    """Tokens per second of greedy generation of ``prompts`` (after loading and a warm-up)."""
    backend.start()
    backend.generate(prompts[:1], max_new_tokens=4)
    t0 = time.perf_counter()
    outs = backend.generate(prompts, max_new_tokens=max_new_tokens, temperature=0.0, seed=0, ignore_eos=True)
    seconds = time.perf_counter() - t0
    tokens = sum(o.completion_tokens for o in outs)
    return {"prompts": len(prompts), "max_new_tokens": max_new_tokens,
            "prompt_tokens": sum(o.prompt_tokens for o in outs), "completion_tokens": tokens,
            "seconds": seconds, "tokens_per_s": tokens / seconds if seconds > 0 else float("nan")}


def run(job) -> pd.DataFrame:
    """Rule ``generation_speed``: every quantised PLR model (:func:`quantized_models`) on the same prompts."""
    prompts = speed_prompts(job)
    rows = []
    for name in quantized_models(job.config):
        spec = job.config["models"][name]
        with open_backend(spec, name) as backend:
            row = {"dataset": job.dataset, "model": name, "quantization": spec["quantization"],
                   **measure(backend, prompts, job.settings["speed_max_new_tokens"])}
        log.info("%s (%s): %.1f tokens/s (%d tokens in %.1fs)", name, spec["quantization"], row["tokens_per_s"],
                 row["completion_tokens"], row["seconds"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=SPEED_COLUMNS)
    write_csv(table, job.output["speed"])
    return table
