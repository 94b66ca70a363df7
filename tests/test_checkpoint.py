"""Crash checkpoints: a long job keeps what its engines answered until it has written all of
its outputs, and a second try asks the engines only for what is missing.

Real engines (SmolLM2 with transformers, all-MiniLM-L6-v2), real stages (``run(job)``); a job
fails the way a full disk or a killed writer fails it: after its engines have answered, while
writing its outputs (a folder stands where its last output belongs).
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import causal_spec, encoder_spec
from explainbench.engines import Backend, engines_started, load_backend
from explainbench.engines.checkpoint import Checkpoint, CheckpointedBackend, job_checkpoint, partial_dir
from explainbench.files import write_examples, write_explanations
from explainbench.workflow import Job, rule_settings

ROOT = Path(__file__).resolve().parents[1]
NLI = ["entailment", "neutral", "contradiction"]
WORDS = {"entailment": "yes", "neutral": "maybe", "contradiction": "no"}  # one token each: one forward pass a prompt


class Counting(Backend):
    """A real engine, counted: the prompts and texts that reach it, and the calls; it can fail
    after some calls (as a killed job would)."""

    def __init__(self, inner: Backend, fail_after_calls: int | None = None):
        super().__init__(inner.spec, inner.name)
        self.inner, self.fail_after_calls = inner, fail_after_calls
        self.calls, self.items = 0, 0

    def _count(self, n: int):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("killed")
        self.calls += 1
        self.items += n

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def generate(self, prompts, **kwargs):
        self._count(len(prompts))
        return self.inner.generate(prompts, **kwargs)

    def label_logprobs(self, prompts, options):
        self._count(len(prompts))
        return self.inner.label_logprobs(prompts, options)

    def embed(self, texts, **kwargs):
        self._count(len(texts))
        return self.inner.embed(texts, **kwargs)


def _rows(n_per_class: int = 2) -> list[dict]:
    return [{"id": f"{label[:3]}-{i}", "premise": f"A person number {i} is walking to the {label} shop .",
             "hypothesis": "A person is walking outside .", "label": label,
             "explanations": [f"a person walking to a shop is walking outside ({label}) ."]}
            for label in NLI for i in range(n_per_class)]


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    backend = load_backend(causal_spec(smollm2_path, backend="transformers", batch_size=4), "smollm2")
    yield backend
    backend.close()


@pytest.mark.slow
def test_a_second_try_asks_the_engine_only_for_the_prompts_not_answered(tmp_path, smollm2):
    from explainbench.classify.zeroshot import Settings, classify, verbalizers
    from explainbench.prompts import load_template

    records = _rows(2)[:5]  # 5 examples, in batches of 2: 3 engine calls
    template = load_template(ROOT / "config" / "prompts", "classify", "mine", "nli")
    words, settings = verbalizers(NLI, WORDS), Settings(min_label_mass=0.0, batch_size=2)
    folder = tmp_path / "predictions.csv.partial"

    dying = Counting(smollm2, fail_after_calls=2)
    with pytest.raises(RuntimeError, match="killed"):
        classify(CheckpointedBackend(dying, Checkpoint(folder)), records, template, words, settings,
                 with_explanation=False)
    assert dying.items == 4 and len(list(folder.glob("calls-*.npz"))) == 2

    again = Counting(smollm2)
    engine = CheckpointedBackend(again, Checkpoint(folder))
    preds, probs, _ = classify(engine, records, template, words, settings, with_explanation=False)
    assert (again.calls, again.items) == (1, 1)  # the one unanswered prompt
    assert (engine.computed, engine.reused, engine.engine_calls) == (1, 4, 1)
    direct = classify(smollm2, records, template, words, settings, with_explanation=False)
    assert preds == direct[0]
    np.testing.assert_allclose(probs, direct[1], atol=1e-6)  # stored answers are the engine's own

    # a changed prompt is a new question; a changed model entry too
    other = copy.deepcopy(template)
    other["user"] = "Tell me: " + other["user"]
    third = Counting(smollm2)
    classify(CheckpointedBackend(third, Checkpoint(folder)), records[:2], other, words, settings,
             with_explanation=False)
    assert third.items == 2


def test_the_checkpoint_outlives_a_failed_block_and_not_a_finished_one(tmp_path):
    output = tmp_path / "out" / "embeddings.npz"
    with pytest.raises(OSError):
        with job_checkpoint(output) as checkpoint:
            checkpoint.save(["a", "b"], np.ones((2, 3)))
            raise OSError("disk full")
    assert (partial_dir(output) / "calls-000000.npz").exists()
    with job_checkpoint(output) as checkpoint:
        assert set(checkpoint.answers()) == {"a", "b"}
    assert not partial_dir(output).exists()


def _job(tmp: Path, rule: str, config: dict, wildcards: dict, outputs: list[str], inputs: dict) -> Job:
    return Job(input=inputs, output={o: str(tmp / "out" / f"{o}.{ext}") for o, ext in outputs}, config=config,
               wildcards={"dataset": "mine", **wildcards}, settings=rule_settings(config, rule), rule=rule)


def _config(models: dict, **sections) -> dict:
    from explainbench.config import validate_config

    config = {"datasets": {"mine": {"format": "jsonl", "path": "-", "labels": NLI}}, "models": models,
              "prompts_dir": str(ROOT / "config" / "prompts"), **sections}
    return validate_config(config)


def _fail_then_resume(job: Job, run, blocked: str, caplog) -> list[str]:
    """Run a stage whose output ``blocked`` cannot be written (a folder stands there), then again
    with the way cleared; return the engines the second run started."""
    Path(job.output[blocked]).mkdir(parents=True)
    with pytest.raises(OSError):
        run(job)
    first_output = next(iter(job.output.values()))
    assert partial_dir(first_output).is_dir(), "the failed job's checkpoint is gone"
    Path(job.output[blocked]).rmdir()
    before = engines_started()
    caplog.clear()
    run(job)
    assert all(Path(p).is_file() for p in job.output.values())
    assert not partial_dir(first_output).exists(), "the finished job left its checkpoint"
    return engines_started()[len(before):]


def _examples(tmp: Path, train: list[dict], test: list[dict]) -> str:
    """An examples.jsonl (the data stage's file): ``test`` in fold 0's test split, ``train`` in its train split."""
    path = tmp / "examples.jsonl"
    write_examples([dict(r, test_fold=0 if r in test else None, dev_folds=[], demonstration=None)
                    for r in train + test], path)
    return str(path)


def _zeroshot(tmp: Path, models: dict):
    examples = _examples(tmp, [], _rows(2))
    config = _config({"smollm2": causal_spec(models["smollm2"], backend="transformers", batch_size=4)},
                     zeroshot={"batch_size": 2, "verbalizers": {"mine": WORDS}}, report={"bootstrap": 10})
    job = _job(tmp, "zeroshot", config, {"model": "smollm2", "condition": "none", "fold": "0"},
               [("predictions", "csv"), ("metrics", "json")], {"examples": examples, "explanations": []})
    return job, "classify.zeroshot", "model smollm2: 0 prompt(s) computed in 0 engine call(s), 6 answered from the checkpoint"


def _embed(tmp: Path, models: dict):
    rows = _rows(6)
    examples = _examples(tmp, rows[::2], rows[1::2])
    config = _config({"minilm": encoder_spec(models["minilm"])}, plr={"embed_chunk_size": 4, "n_per_class": [2]})
    job = _job(tmp, "embed", config, {"model": "minilm"}, [("embeddings", "npz")],
               {"examples": examples})
    return job, "plr.embed", "model minilm: 0 prompt(s) computed in 0 engine call(s), 18 answered from the checkpoint"


def _scoring(tmp: Path, models: dict):
    refs = _rows(4)
    examples = _examples(tmp, [], refs)
    write_explanations([{"id": r["id"], "text": f"the person walks to the shop, so {r['label']} .", "prompt_hash": "-",
                         "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 1, "seconds": 0.0,
                         "model": "m", "dataset": "mine", "shots": 0, "seed": 0, "states_label": False, "demo_ids": []}
                        for r in refs],
                       tmp / "explanations.jsonl")
    config = _config({"minilm": encoder_spec(models["minilm"])},
                     quality={"bertscore": {"model": "minilm", "num_layers": 6}, "mauve": {"model": "minilm"},
                              "bootstrap": 10})
    job = _job(tmp, "score_explanations", config, {"model": "m", "shots": "0", "seed": "0", "fold": "0"},
               [("per_example", "csv"), ("corpus", "csv")], {"explanations": str(tmp / "explanations.jsonl"),
                                                            "examples": examples})
    return job, "explanations.scoring", "bertscore already computed; read from the checkpoint"


STAGES = {"zeroshot": _zeroshot, "embed": _embed, "score_explanations": _scoring}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_failed_stage_resumes_without_starting_an_engine(stage, tmp_path, smollm2_path, minilm_path, caplog):
    """The second try of zeroshot, embed and score_explanations (BERTScore and MAUVE's encoder)
    answers everything from the checkpoint: no engine starts."""
    import importlib

    caplog.set_level(logging.INFO, logger="explainbench")
    job, module, said = STAGES[stage](tmp_path, {"smollm2": smollm2_path, "minilm": minilm_path})
    last = list(job.output)[-1]
    assert _fail_then_resume(job, importlib.import_module(f"explainbench.{module}").run, last, caplog) == []
    assert said in caplog.text
