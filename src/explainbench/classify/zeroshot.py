"""Zero-shot classification by an LLM, with or without an explanation in the prompt.

The answer is read from the log-probabilities of the label words (the verbalizers) as the
continuation of the prompt, through any :class:`explainbench.engines.Backend` (vLLM,
transformers, OpenAI-compatible), never by parsing generated text. The prompt comes from
``<prompts_dir>/<task>/classify.yaml`` (or a dataset's own ``<prompts_dir>/<dataset>/classify.yaml``)::

    system: ...                     # optional
    user: ...                       # {premise} {hypothesis} / {text}, {options}
    user_with_explanation: ...      # the same, plus {explanation}
    answer_prefix: "Answer:"        # the assistant's answer starts with this; the label word follows

With an ``answer_prefix`` the chat messages are rendered (the model's chat template when it
has one) and the prefix is appended, so the label word is the very next token(s); label
words are scored with a leading space unless the prefix ends in whitespace. Without a
prefix the messages go to the backend as they are and the words are scored bare (the start
of the assistant's turn). A chat-only model (GPT-4o mini: ``Backend.chat_only``) cannot be
prefilled: it gets the messages with the prefix as the last line of the user turn, and the
label words are read from the log-probabilities of its first answer token
(``/chat/completions`` with ``logprobs`` and ``top_logprobs``).

An example whose label words get no finite score, or whose total label probability is
below ``min_label_mass``, has no valid prediction: it counts as wrong and is reported in
``n_invalid``, never dropped.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ExplainBenchError
from ..prompts import PromptError, dataset_template, fill

log = logging.getLogger(__name__)

STAGE = "classify"


class ZeroShotError(ExplainBenchError):
    """Bad zero-shot settings (verbalizers, templates)."""


@dataclass(frozen=True)
class Settings:
    """How answers are read: config ``zeroshot`` (the schema holds their defaults)."""

    min_label_mass: float  # below this total label-word probability an answer is invalid
    batch_size: int  # prompts per backend call

    @classmethod
    def from_settings(cls, settings: dict) -> "Settings":
        """From a job's settings (:func:`explainbench.workflow.rule_settings`), which hold more keys."""
        return cls(**{f.name: settings[f.name] for f in fields(cls)})


def verbalizers(labels: Sequence[str], mapping: dict | None, dataset: str = "<dataset>") -> dict[str, str]:
    """label -> answer word: config ``zeroshot.verbalizers[dataset]``, else the label name itself."""
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(labels))
    if unknown:
        raise ZeroShotError(f"config key zeroshot.verbalizers.{dataset}: unknown label(s) {unknown}; labels: {list(labels)}")
    words = {label: str(mapping.get(label, label)).strip() for label in labels}
    empty = [label for label, w in words.items() if not w]
    if empty:
        raise ZeroShotError(f"config key zeroshot.verbalizers.{dataset}: empty word for label(s) {empty}")
    seen: dict[str, str] = {}
    for label, word in words.items():
        if word.lower() in seen:
            raise ZeroShotError(f"config key zeroshot.verbalizers.{dataset}: labels {seen[word.lower()]!r} and {label!r} "
                                f"share the word {word!r}")
        seen[word.lower()] = label
    return words


def options_text(words: Sequence[str]) -> str:
    """``a, b or c`` (what the prompt lists as the possible answers)."""
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_template(template: dict, with_explanation: bool) -> None:
    key = "user_with_explanation" if with_explanation else "user"
    where = template.get("__file__", "<template>")
    if key not in template:
        raise PromptError(f"{where}: missing key {key!r}")
    if with_explanation and "{explanation}" not in template[key]:
        raise PromptError(f"{where}, key {key!r}: has no {{explanation}} placeholder")


def build_messages(record: dict, template: dict, words: dict[str, str], with_explanation: bool) -> list[dict]:
    """The chat messages of one example."""
    key = "user_with_explanation" if with_explanation else "user"
    # the gold label is never a prompt value: a template that asks for {label} is an error
    values = {k: v for k, v in record.items() if isinstance(v, str) and k != "label"}
    values["options"] = options_text(list(words.values()))
    messages = []
    if template.get("system"):
        messages.append({"role": "system", "content": fill(template, "system", **values).strip()})
    messages.append({"role": "user", "content": fill(template, key, **values).strip()})
    return messages


def answer_options(template: dict, words: dict[str, str], chat_only: bool = False) -> list[str]:
    """The continuations scored for each label, spaced to follow the answer prefix naturally (a
    chat-only model starts its answer with the bare word)."""
    prefix = "" if chat_only else template.get("answer_prefix") or ""
    space = "" if not prefix or prefix[-1].isspace() else " "
    return [space + w for w in words.values()]


def build_prompts(backend, records: list[dict], template: dict, words: dict[str, str],
                  with_explanation: bool) -> list:
    """One prompt per record: a rendered string ending in the answer prefix, or chat messages
    (for a chat-only model, with the prefix as the last line of the user turn)."""
    check_template(template, with_explanation)
    prefix = template.get("answer_prefix") or ""
    prompts = []
    for rec in records:
        messages = build_messages(rec, template, words, with_explanation)
        if backend.chat_only:
            if prefix:
                messages[-1] = dict(messages[-1], content=f"{messages[-1]['content']}\n\n{prefix.strip()}")
            prompts.append(messages)
        else:
            prompts.append(backend.render(messages) + prefix if prefix else messages)
    return prompts


def decide(scores: np.ndarray, labels: Sequence[str], min_label_mass: float):
    """Predictions from (n, k) label log-probabilities.

    Returns (predictions with None for invalid, probabilities over the labels (n, k),
    label mass: the total probability of the label words).
    """
    scores = np.asarray(scores, dtype=float)
    preds: list[str | None] = []
    probs = np.full(scores.shape, np.nan)
    mass = np.zeros(len(scores))
    for i, row in enumerate(scores):
        finite = np.isfinite(row)
        if not finite.any():
            preds.append(None)
            continue
        top = np.max(row[finite])
        exp = np.where(finite, np.exp(np.where(finite, row, top) - top), 0.0)
        probs[i] = exp / exp.sum()
        mass[i] = float(np.exp(top) * exp.sum())
        preds.append(labels[int(np.argmax(np.where(finite, row, -np.inf)))] if mass[i] >= min_label_mass else None)
    return preds, probs, mass


def classify(backend, records: list[dict], template: dict, words: dict[str, str], settings: Settings, *,
             with_explanation: bool):
    """Label log-probabilities for every record, in batches (progress logged); see :func:`decide`.

    The library's zero-shot classifier: rule zeroshot and Study 2's zero-shot baseline use it."""
    labels = list(words)
    options = answer_options(template, words, backend.chat_only)
    prompts = build_prompts(backend, records, template, words, with_explanation)
    backend.check_fits(prompts, backend.answer_reserve(options), [r["id"] for r in records],
                       template.get("__file__", "<template>"))  # before the engine starts
    log.info("first prompt: %r; answer options: %r", prompts[0] if prompts else None, options)
    t0 = time.time()
    parts = []
    for start in range(0, len(prompts), settings.batch_size):
        batch = prompts[start:start + settings.batch_size]
        parts.append(np.asarray(backend.label_logprobs(batch, options), dtype=float))
        done = min(start + settings.batch_size, len(prompts))
        log.info("scored %d/%d examples (%.0fs)", done, len(prompts), time.time() - t0)
    scores = np.concatenate(parts) if parts else np.zeros((0, len(labels)))
    return decide(scores, labels, settings.min_label_mass)


def run(job) -> dict:
    """Rule zeroshot: the LLM ``job.model`` classifies the test split (:func:`classify_job`).
    Its answers are checkpointed beside the outputs until both are written, so a job that dies
    asks the engine only for the batches it had not answered. A served model (``serve: true``)
    is asked through its rule-serve_llm server (the job's input ``service``) instead of being loaded."""
    from ..engines import open_backend
    from ..engines.checkpoint import job_checkpoint
    from ..engines.serve import service_file

    service = service_file(job.config, job.model, job.dataset)
    with job_checkpoint(job.output["predictions"]) as checkpoint, \
            open_backend(job.model_spec, job.model, service=service) as backend:
        engine = checkpoint.wrap(backend)
        metrics = classify_job(engine, job)
        log.info("%s", engine.report())
        return metrics


def classify_job(backend, job) -> dict:
    """Rule zeroshot's work with an open ``backend`` (which stays open, so one engine can serve
    several jobs): read the test split with the condition's explanation file (``job.input
    ["explanations"]``: one for an llm condition, none otherwise), classify, write ``job.output``
    predictions and metrics."""
    from ..explanations.leakage import dataset_label_words
    from .conditions import empty_explanations, load_fold
    from .predictions import RunIdentity, metrics_record, predictions_frame, write_outputs

    condition, spec = job.wildcards["condition"], job.dataset_spec
    test = load_fold(job.input["examples"], job.wildcard_int("fold"), condition,
                     next(iter(job.input["explanations"]), None), dataset_label_words(spec))["test"]
    labels = list(spec["labels"])
    words = verbalizers(labels, job.config["zeroshot"]["verbalizers"].get(job.dataset, {}), job.dataset)
    template = dataset_template(job.settings["prompts_dir"], STAGE, job.dataset, spec)
    t0 = time.time()
    preds, probs, mass = classify(backend, test, template, words, Settings.from_settings(job.settings),
                                  with_explanation=condition != "none")
    n_invalid = sum(p is None for p in preds)
    if n_invalid:
        log.warning("%d of %d examples have no valid label (counted wrong)", n_invalid, len(preds))
    extra = {"verbalizers": words, "template": str(Path(template["__file__"])),
             "answer_read_from": ("the first answer token's top log-probabilities (chat endpoint)" if backend.chat_only
                                  else "the label words' log-probabilities after the prompt"),
             "n_empty_explanation": empty_explanations(test) if condition != "none" else 0,
             "mean_label_mass": float(np.mean(mass)) if len(mass) else math.nan, "seconds": round(time.time() - t0, 1)}
    metrics = metrics_record(RunIdentity.of(job, "zeroshot", None), [r["label"] for r in test], preds, labels,
                             job.settings["bootstrap"], extra)
    write_outputs(job, predictions_frame(test, preds, labels, probs), metrics)
    log.info("%s on %s (%s): accuracy %.4f, macro-F1 %.4f, %d invalid", job.model, job.dataset, condition,
             metrics["accuracy"], metrics["macro_f1"], n_invalid)
    return metrics
