"""LLM-written explanations: few-shot demonstrations, prompts, and chunked, resumable generation.

For each example of a split, an explainer LLM writes a short natural-language explanation,
zero-shot or after ``k`` demonstrations (train examples with their first human explanation)::

    prompting = Prompting(load_template("config/prompts", "explain", "esnli", "nli"), train, labels)
    settings = ExplainSettings(shots=2, seed=0, show_label=True, max_new_tokens=64, temperature=0.0,
                               chunk_size=64)
    with open_backend(spec, "smollm2") as backend:
        rows = explain_records(test, backend, prompting, settings,
                               "results/explanations/esnli/smollm2/2shot/seed0/test.jsonl",
                               meta={"model": "smollm2", "dataset": "esnli", "split": "test"})

Demonstrations are drawn per example, seeded and label-balanced (``sample_demonstrations``).
Templates are YAML data files (``config/prompts/<task or dataset>/explain.yaml``) with keys
``system`` (optional), ``instruction_with_label`` / ``instruction_without_label``,
``input_with_label`` / ``input_without_label`` and ``answer``; ``show_label`` picks the
pair, so the file itself says what the explainer sees. A prompt is a chat: the instruction
and the first input in the first user turn, each demonstration's explanation as an
assistant turn.

Generation is written in chunks to ``<output>.partial/``; a run that is killed resumes
after its last finished chunk and never generates a finished example again. The output
file appears (atomically) only when every example has its explanation. Inside a job
(:func:`run`), every split's chunks stay until all three splits are written: Snakemake deletes
all outputs of a job that dies, so a finished split is rebuilt from its chunks, not generated
again (:mod:`explainbench.engines.checkpoint`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..engines import Backend, open_backend, prompt_hash
from ..engines.checkpoint import job_checkpoint, remove_when_done
from ..errors import DataError, ExplainBenchError
from ..files import write_explanations
from ..io import read_jsonl, write_json, write_jsonl
from ..prompts import PromptError, fill, load_template
from ..splits import hash_key

log = logging.getLogger(__name__)

class ExplainError(ExplainBenchError):
    """Explanations cannot be generated as asked (no demonstrations, bad partial files, ...)."""


@dataclass(frozen=True)
class ExplainSettings:
    """How explanations are asked for and generated: config section ``explain`` and the job's
    ``shots`` and ``seed``. No defaults here: the schema holds them."""

    shots: int
    seed: int
    show_label: bool
    max_new_tokens: int
    temperature: float
    chunk_size: int

    @classmethod
    def from_job(cls, job) -> "ExplainSettings":
        s = job.settings
        return cls(shots=job.wildcard_int("shots"), seed=job.wildcard_int("seed"), show_label=s["show_label"],
                   max_new_tokens=s["max_new_tokens"], temperature=s["temperature"], chunk_size=s["chunk_size"])


@dataclass(frozen=True)
class Prompting:
    """What prompts are built from: the template, the train split the demonstrations come from
    (``source`` names its file in errors), and the label names."""

    template: dict
    train: Sequence[dict] = field(repr=False)
    labels: Sequence[str] = ()
    source: str = "train split"


# ============================================================================ demonstrations

def _demo_pools(train: Sequence[dict], seed: int, source: str) -> dict[str, list[dict]]:
    """Train records that have a human explanation, per label, each pool in seeded hash order."""
    pools: dict[str, list[dict]] = {}
    for rec in train:
        if rec.get("explanations"):
            pools.setdefault(rec["label"], []).append(rec)
    if not pools:
        raise ExplainError(f"{source}: no train example has a human explanation, so there are no "
                           "few-shot demonstrations (use shots: [0] for this dataset)")
    return {label: sorted(group, key=lambda r: hash_key(seed, r["id"])) for label, group in sorted(pools.items())}


def _int_hash(*parts) -> int:
    return int(hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:15], 16)


def sample_demonstrations(example: dict, pools: dict[str, list[dict]], k: int, seed: int) -> list[dict]:
    """``k`` demonstrations for one example: label-balanced, seeded, never the example itself.

    Each label gets ``k // L`` demonstrations (``L`` labels with explained train examples);
    the ``k % L`` left over go to labels chosen by a hash of (seed, example id), so they
    balance out over a split. Within a label, demonstrations are consecutive entries of the
    seeded pool from an offset hashed from (seed, example id): different examples see
    different demonstrations, the same seed always the same ones. The order of the
    demonstrations in the prompt is shuffled by the same hash (labels do not come in a
    fixed order).
    """
    if k <= 0:
        return []
    labels = sorted(pools)
    ex_id = example["id"]
    per_label = {label: k // len(labels) for label in labels}
    extra = sorted(labels, key=lambda lab: hash_key(f"{seed}:extra:{ex_id}", lab))[:k % len(labels)]
    for label in extra:
        per_label[label] += 1
    demos = []
    for label in labels:
        want = per_label[label]
        pool = [r for r in pools[label] if r["id"] != ex_id] if want else []
        if len(pool) < want:
            raise ExplainError(f"cannot draw {want} demonstration(s) of label {label!r} for example {ex_id!r}: "
                               f"the train split has {len(pool)} other explained example(s) of that label")
        start = _int_hash(seed, "offset", ex_id, label) % len(pool) if pool else 0
        demos.extend(pool[(start + i) % len(pool)] for i in range(want))
    return sorted(demos, key=lambda r: hash_key(f"{seed}:order:{ex_id}", r["id"]))


# ============================================================================ prompts

def _input_values(record: dict, labels: Sequence[str]) -> dict:
    values = {k: v for k, v in record.items() if isinstance(v, str)}
    values["labels"] = ", ".join(labels)
    return values


def build_prompt(template: dict, example: dict, demos: Sequence[dict], *, show_label: bool = True,
                 labels: Sequence[str] = ()) -> list[dict[str, str]]:
    """The chat messages that ask for ``example``'s explanation after ``demos``."""
    which = "with_label" if show_label else "without_label"
    messages = []
    if template.get("system"):
        messages.append({"role": "system", "content": fill(template, "system", labels=", ".join(labels))})
    instruction = fill(template, f"instruction_{which}", labels=", ".join(labels)).strip()
    first = True
    for demo in demos:
        text = fill(template, f"input_{which}", **_input_values(demo, labels)).strip()
        messages.append({"role": "user", "content": f"{instruction}\n\n{text}" if first else text})
        messages.append({"role": "assistant",
                         "content": fill(template, "answer", explanation=demo["explanations"][0]).strip()})
        first = False
    text = fill(template, f"input_{which}", **_input_values(example, labels)).strip()
    messages.append({"role": "user", "content": f"{instruction}\n\n{text}" if first else text})
    return messages


def build_prompts(records: Sequence[dict], prompting: Prompting, settings: ExplainSettings) -> list[list[dict]]:
    """One prompt per record (see ``build_prompt``), demonstrations drawn from the train split."""
    shots, seed = settings.shots, settings.seed
    pools = _demo_pools(prompting.train, seed, prompting.source) if shots > 0 else {}
    labels = list(prompting.labels) or sorted({r["label"] for r in list(records) + list(prompting.train)})
    prompts = []
    for i, rec in enumerate(records):
        try:
            prompts.append(build_prompt(prompting.template, rec, sample_demonstrations(rec, pools, shots, seed),
                                        show_label=settings.show_label, labels=labels))
        except PromptError as err:
            raise PromptError(f"{err} (example {i + 1}, id {rec.get('id')!r})") from None
    return prompts


# ============================================================================ chunked generation

def _fingerprint(meta: dict) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_finished(partial: Path, fingerprint: str, expected: dict[str, str]) -> dict[str, dict]:
    """Rows of finished chunks that belong to this run (same settings, same prompts)."""
    state = partial / "run.json"
    if partial.exists():
        try:
            same = json.loads(state.read_text()).get("fingerprint") == fingerprint
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            log.warning("%s: left by a run with other settings (or unreadable); starting over", partial)
            shutil.rmtree(partial)
    finished: dict[str, dict] = {}
    for chunk in sorted(partial.glob("chunk-*.jsonl")) if partial.exists() else []:
        try:
            rows = read_jsonl(chunk)
        except (OSError, DataError) as err:
            log.warning("%s: unreadable (%s); its examples are generated again", chunk, err)
            continue
        stale = [r.get("id") for r in rows if expected.get(r.get("id")) != r.get("prompt_hash")]
        if stale:
            log.warning("%s: %d row(s) whose prompt changed (e.g. %r); they are generated again",
                        chunk, len(stale), stale[0])
        finished.update((r["id"], r) for r in rows if expected.get(r.get("id")) == r.get("prompt_hash"))
    return finished


def explain_records(records: Sequence[dict], backend: Backend, prompting: Prompting, settings: ExplainSettings,
                    output: str | Path, meta: dict) -> list[dict]:
    """Generate one explanation per record and write the contract JSONL to ``output``.

    ``meta`` holds ``model``, ``dataset`` and ``split`` (copied into each row) and may hold
    anything else that changes the generations (the model's settings): partial chunks left
    by a run with a different ``meta``, seed, shots or generation settings are discarded.
    ``seconds`` of a row is its chunk's wall time divided by the chunk's size (engines
    generate a chunk as one batch).
    """
    output = Path(output)
    records = list(records)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ExplainError(f"{output}: the split has duplicate ids")
    prompts = build_prompts(records, prompting, settings)
    hashes = [prompt_hash(p) for p in prompts]
    expected = dict(zip(ids, hashes))
    shots, seed, chunk_size = settings.shots, settings.seed, settings.chunk_size
    run_state = dict(meta, **{k: v for k, v in asdict(settings).items() if k != "chunk_size"},
                     template=prompting.template.get("__file__"))
    fingerprint = _fingerprint(run_state)

    partial = output.with_name(output.name + ".partial")
    finished = _load_finished(partial, fingerprint, expected)
    partial.mkdir(parents=True, exist_ok=True)
    write_json({"fingerprint": fingerprint, "settings": run_state}, partial / "run.json")

    todo = [i for i, rec_id in enumerate(ids) if rec_id not in finished]
    total, done = len(ids), len(ids) - len(todo)
    where = f"{meta.get('dataset')}/{meta.get('model')} {shots}shot seed{seed} {meta.get('split')}"
    if done:
        log.info("%s: resuming: %d/%d examples already done in %s", where, done, total, partial)
    log.info("%s: %d example(s) to generate in chunks of %d", where, len(todo), chunk_size)
    existing = {int(p.stem.split("-")[1]) for p in partial.glob("chunk-*.jsonl")}
    next_chunk = max(existing, default=-1) + 1
    if todo:
        t0 = time.time()
        backend.start()  # so that `seconds` and examples/s leave the engine's start-up out
        log.info("%s: engine ready in %.1fs", where, time.time() - t0)
    t_start, calls = time.time(), 0
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        t0 = time.time()
        gens = backend.generate([prompts[i] for i in chunk], max_new_tokens=settings.max_new_tokens,
                                temperature=settings.temperature, seed=seed)
        calls += 1
        if len(gens) != len(chunk):
            raise ExplainError(f"{where}: the backend returned {len(gens)} generations for {len(chunk)} prompts")
        seconds = (time.time() - t0) / len(chunk)
        rows = []
        for i, gen in zip(chunk, gens):
            rows.append({"id": ids[i], "text": gen.text, "prompt_hash": hashes[i], "finish_reason": gen.finish_reason,
                         "prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                         "seconds": round(seconds, 4), "model": meta.get("model"), "dataset": meta.get("dataset"),
                         "shots": shots, "seed": seed, "split": meta.get("split")})
        write_jsonl(rows, partial / f"chunk-{next_chunk:06d}.jsonl")
        next_chunk += 1
        finished.update((r["id"], r) for r in rows)
        done += len(chunk)
        elapsed = time.time() - t_start
        rate = (done - (total - len(todo))) / elapsed if elapsed > 0 else float("inf")
        eta = (total - done) / rate if rate > 0 else float("inf")
        log.info("%s: %d/%d done (%.0f%%), %.2f examples/s, ETA %.0fs", where, done, total,
                 100.0 * done / total, rate, eta)

    rows = [finished[rec_id] for rec_id in ids]
    empty = sum(1 for r in rows if not r["text"])
    if empty:
        log.warning("%s: %d of %d explanations are empty", where, empty, total)
    write_explanations(rows, output)
    remove_when_done(partial)  # inside a job: when all of its outputs are written
    log.info("%s: wrote %d explanations to %s (%d generated now in %d engine call(s), %d from earlier chunks)",
             where, total, output, len(todo), calls, total - len(todo))
    return rows


# ============================================================================ the rule

def generation_spec(model_spec: dict) -> dict:
    """The model settings that can change what it generates (for the partial-run fingerprint)."""
    from ..config import result_keys

    return result_keys(model_spec, "models.*")


def run(job) -> dict[str, list[dict]]:
    """Rule ``explain``: explain every split of a dataset with one engine start.

    The model is loaded once for all splits (loading a 70B model three times would cost more
    than the test split's generation); each split is its own chunked, resumable output, the
    test split first (the quality scores wait on it).
    """
    settings = ExplainSettings.from_job(job)
    train = read_jsonl(job.input["train"])
    template = load_template(job.settings["prompts_dir"], "explain", job.dataset, job.dataset_spec["task"])
    prompting = Prompting(template, train, job.dataset_spec["labels"], str(job.input["train"]))
    log.info("template %s; %d train examples; model %s (%s)", template["__file__"], len(train), job.model,
             job.model_spec["backend"])
    out: dict[str, list[dict]] = {}
    splits = {split: read_jsonl(job.input[split]) for split in ("test", "dev", "train")}
    with job_checkpoint(job.output["test"]), open_backend(job.model_spec, job.model) as backend:
        for split, records in splits.items():  # before the engine starts: every split's prompts fit
            backend.check_fits(build_prompts(records, prompting, settings), settings.max_new_tokens,
                               [r["id"] for r in records], str(job.input[split]))
        for split, records in splits.items():
            log.info("split %s: %d examples -> %s", split, len(records), job.output[split])
            meta = {"model": job.model, "dataset": job.dataset, "split": split,
                    "model_spec": generation_spec(job.model_spec)}
            out[split] = explain_records(records, backend, prompting, settings, job.output[split], meta)
    return out


__all__ = ["ExplainError", "ExplainSettings", "Prompting", "build_prompt", "build_prompts",
           "explain_records", "generation_spec", "run", "sample_demonstrations"]
