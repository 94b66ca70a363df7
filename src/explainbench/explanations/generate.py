"""LLM-written explanations: few-shot demonstrations, prompts, and chunked, resumable generation.

For each example of a dataset, an explainer LLM writes a short natural-language explanation,
zero-shot or after ``k`` demonstrations (train examples with their first human explanation)::

    prompting = Prompting(load_template("config/prompts", "explain", "esnli", "nli"), examples, labels)
    settings = ExplainSettings(shots=2, seed=0, demonstrations="per_example", show_label=True,
                               max_new_tokens=64, temperature=0.0, chunk_size=64)
    with open_backend(spec, "smollm2") as backend:
        rows = explain_records(examples, backend, prompting, settings,
                               "results/explanations/esnli/smollm2/2shot/seed0/explanations.jsonl",
                               meta={"model": "smollm2", "dataset": "esnli"})

``examples`` are the rows of the data stage's ``examples.jsonl`` (records with their fold
placement; plain records count as train examples of fold 0). Demonstrations are

- ``per_example``: drawn for each example, seeded and label-balanced
  (``sample_demonstrations``), from the train split of the fold whose test split holds the
  example (fold 0 for an example in no test fold), never the example itself;
- ``fixed``: the dataset's one set, reserved by the data stage (``demonstration`` rank 0, 1, ...;
  k shots use the first k), in no test fold; a reserved example's own prompt leaves itself out.

Every row records its demonstrations' ids (``demo_ids``) and whether the explanation names a
label (``states_label``, :mod:`explainbench.explanations.leakage`).
Templates are YAML data files (``config/prompts/<task or dataset>/explain.yaml``) with keys
``system`` (optional), ``instruction_with_label`` / ``instruction_without_label``,
``input_with_label`` / ``input_without_label`` and ``answer``; ``show_label`` picks the
pair, so the file itself says what the explainer sees. A prompt is a chat: the instruction
and the first input in the first user turn, each demonstration's explanation as an
assistant turn.

Generation is written in chunks to ``<output>.partial/``; a run that is killed resumes
after its last finished chunk and never generates a finished example again. The output
file appears (atomically) only when every example has its explanation; the chunks are
removed only at the end of the job (:mod:`explainbench.engines.checkpoint`): Snakemake
deletes the outputs of a job that dies, never the chunks.
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
from ..prompts import PromptError, dataset_template, fill
from ..splits import hash_key
from .leakage import dataset_label_words, states_label

log = logging.getLogger(__name__)

class ExplainError(ExplainBenchError):
    """Explanations cannot be generated as asked (no demonstrations, bad partial files, ...)."""


@dataclass(frozen=True)
class ExplainSettings:
    """How explanations are asked for and generated: config section ``explain`` and the job's
    ``shots`` and ``seed``. No defaults here: the schema holds them."""

    shots: int
    seed: int
    demonstrations: str
    show_label: bool
    max_new_tokens: int
    temperature: float
    chunk_size: int

    @classmethod
    def from_job(cls, job) -> "ExplainSettings":
        s = job.settings
        return cls(shots=job.wildcard_int("shots"), seed=job.wildcard_int("seed"), demonstrations=s["demonstrations"],
                   show_label=s["show_label"], max_new_tokens=s["max_new_tokens"], temperature=s["temperature"],
                   chunk_size=s["chunk_size"])


@dataclass(frozen=True)
class Prompting:
    """What prompts are built from: the template, the examples the demonstrations come from
    (``examples.jsonl`` rows; ``source`` names the file in errors), the label names and the words
    that name a label (for ``states_label``)."""

    template: dict
    examples: Sequence[dict] = field(repr=False)
    labels: Sequence[str] = ()
    source: str = "examples"
    label_words: Sequence[str] = ()


# ============================================================================ demonstrations

def _test_fold(example: dict) -> int:
    fold = example.get("test_fold")
    return 0 if fold is None else fold


def _in_train(example: dict, fold: int) -> bool:
    return example.get("test_fold") != fold and fold not in (example.get("dev_folds") or [])


def fixed_demonstrations(examples: Sequence[dict], k: int, source: str) -> list[dict]:
    """The first ``k`` of the dataset's reserved demonstrations (by ``demonstration`` rank)."""
    fixed = sorted((e for e in examples if e.get("demonstration") is not None), key=lambda e: e["demonstration"])
    if len(fixed) < k:
        raise ExplainError(f"{source}: {k} fixed demonstrations asked for, but the data stage reserved {len(fixed)} "
                           "(field 'demonstration'); re-run rule prepare_data with this config")
    return fixed[:k]


def choose_demonstrations(records: Sequence[dict], prompting: Prompting, settings: ExplainSettings) -> list[list[dict]]:
    """Each record's demonstrations, in prompt order (see the module docstring)."""
    k, seed = settings.shots, settings.seed
    if k <= 0:
        return [[] for _ in records]
    if settings.demonstrations == "fixed":
        fixed = fixed_demonstrations(prompting.examples, k, prompting.source)
        ordered = sorted(fixed, key=lambda r: hash_key(f"{seed}:order", r["id"]))
        return [[d for d in ordered if d["id"] != rec["id"]] for rec in records]
    if settings.demonstrations != "per_example":
        raise ExplainError(f"explain.demonstrations: {settings.demonstrations!r}; expected per_example or fixed")
    pools: dict[int, dict[str, list[dict]]] = {}
    out = []
    for rec in records:
        fold = _test_fold(rec)
        if fold not in pools:
            train = [e for e in prompting.examples if _in_train(e, fold)]
            pools[fold] = _demo_pools(train, seed, f"{prompting.source} (train split of fold {fold})")
        out.append(sample_demonstrations(rec, pools[fold], k, seed))
    return out


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


def build_prompts(records: Sequence[dict], prompting: Prompting, settings: ExplainSettings,
                  demos: Sequence[Sequence[dict]] | None = None) -> list[list[dict]]:
    """One prompt per record (see ``build_prompt``), with ``demos`` (default: :func:`choose_demonstrations`)."""
    demos = choose_demonstrations(records, prompting, settings) if demos is None else demos
    labels = list(prompting.labels) or sorted({r["label"] for r in list(records) + list(prompting.examples)})
    prompts = []
    for i, (rec, shown) in enumerate(zip(records, demos)):
        try:
            prompts.append(build_prompt(prompting.template, rec, shown, show_label=settings.show_label, labels=labels))
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

    ``meta`` holds ``model`` and ``dataset`` (copied into each row) and may hold
    anything else that changes the generations (the model's settings): partial chunks left
    by a run with a different ``meta``, seed, shots or generation settings are discarded.
    ``seconds`` of a row is its chunk's wall time divided by the chunk's size (engines
    generate a chunk as one batch).
    """
    output = Path(output)
    records = list(records)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ExplainError(f"{output}: the examples have duplicate ids")
    demos = choose_demonstrations(records, prompting, settings)
    demo_ids = {rec["id"]: [d["id"] for d in shown] for rec, shown in zip(records, demos)}
    prompts = build_prompts(records, prompting, settings, demos)
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
    where = f"{meta.get('dataset')}/{meta.get('model')} {shots}shot seed{seed}"
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
            rows.append({"id": ids[i], "text": gen.text, "states_label": states_label(gen.text, prompting.label_words),
                         "demo_ids": demo_ids[ids[i]], "prompt_hash": hashes[i], "finish_reason": gen.finish_reason,
                         "prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                         "seconds": round(seconds, 4), "model": meta.get("model"), "dataset": meta.get("dataset"),
                         "shots": shots, "seed": seed})
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
    log.info("%s: %d of %d explanations name a label (states_label)", where, sum(r["states_label"] for r in rows), total)
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


def run(job) -> list[dict]:
    """Rule ``explain``: explain every example of a dataset (all folds) with one engine start,
    into one chunked, resumable file: an example's explanation does not depend on the fold it
    is read in (its demonstrations never come from its own test fold)."""
    from ..files import read_examples

    if job.model_spec["backend"] == "file":  # a file explainer: its explanations are read, not generated
        from .from_file import run as explain_from_file

        return explain_from_file(job)
    settings = ExplainSettings.from_job(job)
    examples = read_examples(job.input["examples"])
    spec = job.dataset_spec
    template = dataset_template(job.settings["prompts_dir"], "explain", job.dataset, spec)
    prompting = Prompting(template, examples, spec["labels"], str(job.input["examples"]), dataset_label_words(spec))
    log.info("template %s; %d examples; %d-shot, %s demonstrations; model %s (%s)", template["__file__"], len(examples),
             settings.shots, settings.demonstrations, job.model, job.model_spec["backend"])
    with job_checkpoint(job.output["explanations"]), open_backend(job.model_spec, job.model) as backend:
        # before the engine starts: every prompt fits
        backend.check_fits(build_prompts(examples, prompting, settings), settings.max_new_tokens,
                           [r["id"] for r in examples], str(job.input["examples"]))
        meta = {"model": job.model, "dataset": job.dataset, "model_spec": generation_spec(job.model_spec)}
        return explain_records(examples, backend, prompting, settings, job.output["explanations"], meta)


__all__ = ["ExplainError", "ExplainSettings", "Prompting", "build_prompt", "build_prompts", "choose_demonstrations",
           "explain_records", "fixed_demonstrations", "generation_spec", "run", "sample_demonstrations"]
