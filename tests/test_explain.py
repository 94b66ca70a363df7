"""Explanation generation: few-shot sampling, prompts, real engines on real e-SNLI pairs, resume."""
from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import causal_spec
from explainbench.data import load_records
from explainbench.engines import Backend, load_backend
from explainbench.files import EXPLANATION_FIELDS
from explainbench.explanations.generate import (
    ExplainError,
    ExplainSettings,
    Prompting,
    build_prompt,
    build_prompts,
    choose_demonstrations,
    explain_records,
    sample_demonstrations,
    _demo_pools,
)
from explainbench.explanations.leakage import label_words
from explainbench.io import read_jsonl
from explainbench.prompts import load_template
from explainbench.splits import place_examples, sample_per_class

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PROMPTS = ROOT / "config" / "prompts"
LABELS = ["entailment", "neutral", "contradiction"]
HEALTHFC_LABELS = ["supported", "not enough information", "refuted"]


def _shared(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (tests expect ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="module")
def esnli():
    """Real e-SNLI dev pairs: the first 300 as a 'train' pool, the next ones as examples to explain."""
    records = load_records(_shared("esnli", "dev.jsonl"), format="esnli", labels=LABELS, task="nli")
    return {"train": records[:300], "examples": records[300:]}


@pytest.fixture(scope="module")
def smollm2(smollm2_path) -> Path:
    """The real SmolLM2-135M-Instruct demo model (conftest builds it once per session)."""
    return smollm2_path


def _spec(path: Path, backend: str) -> dict:
    return causal_spec(path, backend, batch_size=8)


def _template(dataset="esnli", task="nli"):
    return load_template(PROMPTS, "explain", dataset, task)


def _settings(shots=2, max_new_tokens=40, chunk_size=2, show_label=True, demonstrations="per_example",
              seed=0) -> ExplainSettings:
    return ExplainSettings(shots=shots, seed=seed, demonstrations=demonstrations, show_label=show_label,
                           max_new_tokens=max_new_tokens, temperature=0.0, chunk_size=chunk_size)


def _prompting(train) -> Prompting:
    return Prompting(_template(), train, LABELS, label_words=label_words(LABELS, ESNLI_WORDS))


ESNLI_WORDS = {"entailment": ["entail"], "neutral": ["neutral"], "contradiction": ["contradict"]}
META = {"model": "smollm2", "dataset": "esnli"}


class Counting(Backend):
    """Wraps a real engine: counts the prompts it generates for and can fail after some calls."""

    def __init__(self, inner: Backend, fail_after_calls: int | None = None):
        super().__init__(inner.spec, inner.name)
        self.inner, self.fail_after_calls = inner, fail_after_calls
        self.calls, self.generated = 0, []

    def generate(self, prompts, **kwargs):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("killed")
        self.calls += 1
        self.generated.extend(prompts)
        return self.inner.generate(prompts, **kwargs)

    def label_logprobs(self, prompts, options):
        return self.inner.label_logprobs(prompts, options)

    def start(self):
        self.inner.start()


# ============================================================================ demonstrations

def test_demonstrations_are_deterministic_balanced_and_never_the_example(esnli):
    train = esnli["train"]
    pools = _demo_pools(train, seed=0, source="train")
    assert sorted(pools) == sorted(LABELS)
    by_label = Counter()
    for example in train[:60]:  # explaining the train split itself: the example is in the pool
        demos = sample_demonstrations(example, pools, k=6, seed=0)
        assert demos == sample_demonstrations(example, pools, k=6, seed=0)
        assert Counter(d["label"] for d in demos) == Counter({lab: 2 for lab in LABELS})
        assert example["id"] not in {d["id"] for d in demos}
        assert len({d["id"] for d in demos}) == 6 and all(d["explanations"] for d in demos)
        two = sample_demonstrations(example, pools, k=2, seed=0)
        assert len({d["label"] for d in two}) == 2
        by_label.update(d["label"] for d in two)
    # k=2 with three labels: the left-over slots rotate over labels, so the split stays balanced
    assert max(by_label.values()) - min(by_label.values()) <= 0.25 * 40
    # another seed draws other demonstrations; examples do not all share one set
    example = esnli["examples"][0]
    a = [d["id"] for d in sample_demonstrations(example, pools, k=3, seed=0)]
    b = [d["id"] for d in sample_demonstrations(example, _demo_pools(train, 1, "train"), k=3, seed=1)]
    c = [d["id"] for d in sample_demonstrations(esnli["examples"][1], pools, k=3, seed=0)]
    assert a != b and a != c


def test_demonstrations_need_explained_train_examples(esnli):
    train = [dict(r, explanations=[]) for r in esnli["train"][:20]]
    with pytest.raises(ExplainError, match="no train example has a human explanation"):
        build_prompts(esnli["examples"][:1], _prompting(train), _settings(shots=2))
    only_one = [r for r in esnli["train"] if r["label"] == "neutral"][:1] + \
               [r for r in esnli["train"] if r["label"] != "neutral"][:10]
    with pytest.raises(ExplainError, match="label 'neutral'"):
        build_prompts([only_one[0]], _prompting(only_one), _settings(shots=3))
    # zero-shot needs no train split at all
    assert len(build_prompts(esnli["examples"][:2], _prompting([]), _settings(shots=0))) == 2


def _placed(esnli, folds=5, reserve=5, dev=0.0):
    """A balanced real e-SNLI subset (40 per class) placed in folds, with fixed demonstrations reserved."""
    records = sample_per_class(esnli["train"] + esnli["examples"], 40, seed=0)
    return place_examples(records, {"seed": 0, "folds": folds, "dev": dev, "test": 0.2}, reserve)


def test_fixed_demonstrations_are_one_set_from_no_test_fold(esnli):
    examples = _placed(esnli)
    prompting = Prompting(_template(), examples, LABELS)
    fixed = [e for e in examples if e["demonstration"] is not None]
    assert sorted(e["demonstration"] for e in fixed) == [0, 1, 2, 3, 4]
    assert all(e["test_fold"] is None and e["dev_folds"] == [] for e in fixed)  # train in every fold
    test_ids = {e["id"] for e in examples if e["test_fold"] is not None}
    for k in (2, 5):
        demos = choose_demonstrations(examples, prompting, _settings(shots=k, demonstrations="fixed"))
        first_k = {e["id"] for e in fixed if e["demonstration"] < k}
        for example, shown in zip(examples, demos):
            ids = {d["id"] for d in shown}
            assert ids == first_k - {example["id"]}  # one set for the dataset; a demonstration leaves itself out
            assert not ids & test_ids
        # every prefix of the fixed set is label-balanced: 2 shots show two labels, 5 shots 2/2/1
        counts = Counter(e["label"] for e in fixed if e["demonstration"] < k)
        assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == min(k, 3)
    # the order in the prompt is seeded by the explain seed, the set is not
    a = choose_demonstrations(examples[:1], prompting, _settings(shots=5, demonstrations="fixed", seed=0))[0]
    b = choose_demonstrations(examples[:1], prompting, _settings(shots=5, demonstrations="fixed", seed=7))[0]
    assert {d["id"] for d in a} == {d["id"] for d in b} and [d["id"] for d in a] != [d["id"] for d in b]
    with pytest.raises(ExplainError, match="reserved 5"):
        choose_demonstrations(examples[:1], prompting, _settings(shots=6, demonstrations="fixed"))


def test_per_example_demonstrations_come_from_the_examples_own_fold(esnli):
    examples = _placed(esnli, reserve=0, dev=0.1)
    prompting = Prompting(_template(), examples, LABELS)
    demos = choose_demonstrations(examples, prompting, _settings(shots=3))
    fold_of = {e["id"]: e["test_fold"] for e in examples}
    dev_of = {e["id"]: e["dev_folds"] for e in examples}
    for example, shown in zip(examples, demos):
        fold = example["test_fold"]
        assert len(shown) == 3 and example["id"] not in {d["id"] for d in shown}
        for d in shown:  # from the train split of the example's own fold: not its test fold, not its dev split
            assert fold_of[d["id"]] != fold and fold not in dev_of[d["id"]]
        assert len({d["label"] for d in shown}) == 3


# ============================================================================ prompts

def test_prompt_shows_the_gold_label_only_when_asked(esnli):
    example = esnli["examples"][0]
    pools = _demo_pools(esnli["train"], 0, "train")
    demos = sample_demonstrations(example, pools, 2, 0)
    shown = build_prompt(_template(), example, demos, show_label=True, labels=LABELS)
    hidden = build_prompt(_template(), example, demos, show_label=False, labels=LABELS)
    # system, (user, assistant) per demonstration, then the example
    assert [m["role"] for m in shown] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert f"Label: {example['label']}" in shown[-1]["content"]
    assert "Label:" not in "".join(m["content"] for m in hidden)
    assert example["premise"] in shown[-1]["content"] and example["hypothesis"] in shown[-1]["content"]
    assert shown[2]["content"] == demos[0]["explanations"][0]
    # the instruction opens the first user turn, and asks not to state the label
    assert "Do not state, name or hint at the label" in shown[1]["content"]
    zero = build_prompt(_template(), example, [], show_label=True, labels=LABELS)
    assert [m["role"] for m in zero] == ["system", "user"] and "Do not state" in zero[1]["content"]


def test_healthfc_has_its_own_wording():
    records = load_records(_shared("healthfc", "Datensatz.csv"), format="healthfc", labels=HEALTHFC_LABELS)
    template = _template("healthfc", "nli")
    assert template["__file__"].endswith("healthfc/explain.yaml")
    prompt = build_prompt(template, records[0], [], show_label=True, labels=HEALTHFC_LABELS)
    assert f"Claim: {records[0]['hypothesis']}" in prompt[-1]["content"]
    assert f"Verdict: {records[0]['label']}" in prompt[-1]["content"]
    # another NLI dataset without its own file falls back to the task's template
    assert _template("esnli", "nli")["__file__"].endswith("nli/explain.yaml")


# ============================================================================ real engines

def _check_rows(rows, examples, *, model, shots):
    assert [r["id"] for r in rows] == [e["id"] for e in examples]
    for row in rows:
        assert list(row) == list(EXPLANATION_FIELDS)
        assert row["model"] == model and row["dataset"] == "esnli"
        assert isinstance(row["states_label"], bool) and len(row["demo_ids"]) == shots
        assert row["shots"] == shots and row["seed"] == 0
        assert row["finish_reason"] in ("stop", "length")
        assert row["prompt_tokens"] > 20 and 0 < row["completion_tokens"] <= 40
        assert row["seconds"] > 0 and len(row["prompt_hash"]) == 16
        words = row["text"].split()
        assert 3 <= len(words) <= 60, row["text"]  # a sentence, not empty, not a runaway


@pytest.mark.slow
def test_transformers_writes_explanations_for_real_pairs(tmp_path, esnli, smollm2, caplog):
    caplog.set_level("INFO", logger="explainbench")
    examples = esnli["examples"][:4]
    backend = load_backend(_spec(smollm2, "transformers"), "smollm2")
    out = tmp_path / "test.jsonl"
    rows = explain_records(examples, backend, _prompting(esnli["train"]), _settings(shots=2), out, META)
    _check_rows(rows, examples, model="smollm2", shots=2)
    assert read_jsonl(out) == rows and not out.with_name("test.jsonl.partial").exists()
    # the explanation talks about the pair: it shares content words with premise or hypothesis
    for row, ex in zip(rows, examples):
        words = {w.strip(".,").lower() for w in (ex["premise"] + " " + ex["hypothesis"]).split() if len(w) > 3}
        assert words & {w.strip(".,").lower() for w in row["text"].split()}, (row["text"], ex)
    assert "2/4 done (50%)" in caplog.text and "examples/s" in caplog.text
    backend.close()


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_writes_explanations_for_real_pairs(tmp_path, esnli, smollm2, monkeypatch):
    pytest.importorskip("vllm")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # a 1 GiB KV cache, not a share of this shared machine's RAM
    examples = esnli["examples"][:6]
    backend = load_backend(_spec(smollm2, "vllm"), "smollm2")
    try:
        prompting = _prompting(esnli["train"])
        rows = explain_records(examples, backend, prompting, _settings(shots=0, chunk_size=4), tmp_path / "zero.jsonl",
                               META)
        _check_rows(rows, examples, model="smollm2", shots=0)
        few = explain_records(examples, backend, prompting, _settings(shots=3, chunk_size=4), tmp_path / "few.jsonl",
                              META)
        _check_rows(few, examples, model="smollm2", shots=3)
        # few-shot prompts are longer (they hold the demonstrations) and hash differently
        assert all(f["prompt_tokens"] > z["prompt_tokens"] + 30 for f, z in zip(few, rows))
        assert not {f["prompt_hash"] for f in few} & {z["prompt_hash"] for z in rows}
    finally:
        backend.close()
        del backend
        gc.collect()


# ============================================================================ resume

@pytest.mark.slow
def test_resume_after_an_exception_generates_only_the_rest(tmp_path, esnli, tiny_llama_path):
    """A real engine that dies after two chunks; the rerun generates only the four examples left.
    (Plumbing, not sense: the tiny random Llama.)"""
    examples = esnli["examples"][:8]
    inner = load_backend(_spec(tiny_llama_path, "transformers"), "tiny")
    out = tmp_path / "test.jsonl"
    prompting, settings = _prompting(esnli["train"]), _settings(shots=1, max_new_tokens=24)
    dying = Counting(inner, fail_after_calls=2)
    with pytest.raises(RuntimeError, match="killed"):
        explain_records(examples, dying, prompting, settings, out, META)
    partial = out.with_name("test.jsonl.partial")
    assert not out.exists() and len(list(partial.glob("chunk-*.jsonl"))) == 2
    first = [r for c in sorted(partial.glob("chunk-*.jsonl")) for r in read_jsonl(c)]
    again = Counting(inner)
    rows = explain_records(examples, again, prompting, settings, out, META)
    assert len(again.generated) == 4 and again.calls == 2
    assert rows[:4] == first and [r["id"] for r in rows] == [e["id"] for e in examples]
    # changed settings: the partial work of the old settings is not reused
    dying = Counting(inner, fail_after_calls=1)
    with pytest.raises(RuntimeError):
        explain_records(examples[:4], dying, prompting, settings, tmp_path / "b.jsonl", META)
    fresh = Counting(inner)
    explain_records(examples[:4], fresh, prompting, _settings(shots=1, max_new_tokens=16), tmp_path / "b.jsonl", META)
    assert len(fresh.generated) == 4
    inner.close()


_CHILD = textwrap.dedent("""
    import json, logging, sys
    from explainbench.engines import load_backend
    from explainbench.explanations.generate import ExplainSettings, Prompting, explain_records
    from explainbench.io import read_jsonl
    from explainbench.prompts import load_template
    logging.basicConfig(level=logging.INFO)
    args = json.loads(sys.argv[1])
    backend = load_backend(args["spec"], "smollm2")
    prompting = Prompting(load_template(args["prompts"], "explain", "esnli", "nli"), read_jsonl(args["train"]),
                          args["labels"], label_words=["entail", "neutral", "contradict"])
    settings = ExplainSettings(shots=2, seed=0, demonstrations="per_example", show_label=True, max_new_tokens=24,
                               temperature=0.0, chunk_size=2)
    explain_records(read_jsonl(args["examples"]), backend, prompting, settings, args["output"],
                    {"model": "smollm2", "dataset": "esnli"})
""")


@pytest.mark.slow
def test_resume_after_sigkill_skips_finished_chunks(tmp_path, esnli, smollm2):
    """A generating process is killed (SIGKILL) once a chunk has landed; the rerun skips that work."""
    from explainbench.io import write_jsonl

    examples = esnli["examples"][:6]
    write_jsonl(examples, tmp_path / "examples.jsonl")
    write_jsonl(esnli["train"], tmp_path / "train.jsonl")
    out = tmp_path / "test.jsonl"
    args = dict(spec=_spec(smollm2, "transformers"), examples=str(tmp_path / "examples.jsonl"),
                train=str(tmp_path / "train.jsonl"), prompts=str(PROMPTS), output=str(out), labels=LABELS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = out.with_name("test.jsonl.partial")
    deadline = time.time() + 240
    while not list(partial.glob("chunk-*.jsonl")):
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no chunk landed within 240 s"
        time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    assert not out.exists()
    landed = [r for c in sorted(partial.glob("chunk-*.jsonl")) for r in read_jsonl(c)]
    assert 2 <= len(landed) < 6 and len(landed) % 2 == 0
    leftovers = [p for p in partial.iterdir() if ".tmp" in p.name]  # an interrupted write is never a chunk
    assert all(not p.name.startswith("chunk-") for p in leftovers)

    counting = Counting(load_backend(args["spec"], "smollm2"))
    rows = explain_records(examples, counting, _prompting(esnli["train"]), _settings(shots=2, max_new_tokens=24),
                           out, META)
    assert len(counting.generated) == 6 - len(landed)
    assert {r["id"] for r in landed}.isdisjoint({p_id for p_id in _ids_of(counting.generated, rows)})
    assert [r["id"] for r in rows] == [e["id"] for e in examples] and all(r["text"] for r in rows)
    assert read_jsonl(out) == rows and not partial.exists()


def _ids_of(prompts, rows):
    """Ids of the rows whose prompts were generated (matched through the prompt hash)."""
    from explainbench.engines import prompt_hash

    hashes = {prompt_hash(p) for p in prompts}
    return [r["id"] for r in rows if r["prompt_hash"] in hashes]
