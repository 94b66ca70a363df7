"""Fine-tune an encoder PLM for sequence classification, with or without explanations.

A plain, seeded torch loop around ``AutoModelForSequenceClassification``: any encoder by
hub id or local path (BERT, RoBERTa, DeBERTa-v3, ModernBERT, MiniLM, ...), on GPU when
there is one and on CPU otherwise. The input of an example is the configured template
filled with its fields and the tokenizer's own separator, e.g. ``premise [SEP] hypothesis
[SEP] explanation``; for the condition ``none`` the explanation part is dropped with its
separator. With early stopping, training stops when dev accuracy has not improved for
``patience`` epochs and the best epoch's weights classify the test set; without it, every
epoch is trained and the last one's weights classify the test set (as in Dhaini et al.'s
code, which has no dev split). The learning rate warms up linearly, then decays linearly or
along a cosine to 0.
"""
from __future__ import annotations

import logging
import math
import random
import string
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ExplainBenchError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
_SEP = "{sep}"


class FinetuneError(ExplainBenchError):
    """Bad fine-tuning settings or inputs."""


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters: config ``finetune`` (the schema holds their defaults)."""

    template: str
    text_template: str
    epochs: float
    batch_size: int
    eval_batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    schedule: str
    max_length: int
    early_stopping: bool
    early_stopping_patience: int
    keep_checkpoints: bool
    log_every_steps: int

    @classmethod
    def from_settings(cls, settings: dict) -> "Settings":
        """From a job's settings (:func:`explainbench.workflow.rule_settings`), which hold more keys."""
        return cls(**{f.name: settings[f.name] for f in fields(cls)})


# ----------------------------------------------------------------------------- inputs

def _placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def render_input(record: dict, template: str, sep: str) -> str:
    """Fill ``template`` for one record; parts (between ``{sep}``) whose fields are all empty are dropped.

    So ``{premise} {sep} {hypothesis} {sep} {explanation}`` becomes ``premise [SEP] hypothesis``
    when the explanation is empty (condition ``none``), with no dangling separator.
    """
    parts = template.split(_SEP)
    kept = []
    for part in parts:
        names = _placeholders(part)
        missing = [n for n in names if n not in record]
        if missing:
            raise FinetuneError(f"template {template!r}: record {record.get('id')!r} has no field(s) {missing}")
        values = {n: str(record[n] or "") for n in names}
        if names and not any(v.strip() for v in values.values()):
            continue
        filled = part.format(**values).strip()
        if filled:
            kept.append(filled)
    return f" {sep} ".join(kept)


def template_for(task: str, settings: Settings) -> str:
    return settings.text_template if task == "classification" else settings.template


def separator(tokenizer) -> str:
    """The encoder's own separator token ([SEP] for BERT, </s> for RoBERTa), else a bar."""
    return tokenizer.sep_token or tokenizer.eos_token or "|"


# ----------------------------------------------------------------------------- training

@dataclass
class FinetuneResult:
    predictions: list[str]
    probabilities: np.ndarray  # (n_test, n_labels)
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_accuracy: float | None = None  # None without a dev split
    seconds: float = 0.0
    device: str = "cpu"


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    if not texts:  # an empty split (no dev split without early stopping)
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def _collate(tokenizer, seqs: list[list[int]], device: str):
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def _autocast(device: str):
    import contextlib

    import torch

    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_proba(model, tokenizer, seqs: list[list[int]], batch_size: int, device: str) -> np.ndarray:
    """Class probabilities; examples are batched by length so little padding is computed."""
    import torch

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = np.zeros((len(seqs), model.config.num_labels), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = _collate(tokenizer, [seqs[i] for i in idx], device)
            with _autocast(device):
                logits = model(input_ids=ids, attention_mask=mask).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


def _length_grouped_batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Seeded shuffled batches of similar length: blocks of 50 batches are sorted by length, so
    little padding is computed, and the batches are then shuffled."""
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(perm), chunk):
        block = sorted(perm[start:start + chunk], key=lambda i: lengths[i])
        batches += [list(block[i:i + batch_size]) for i in range(0, len(block), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _check_splits(splits: dict[str, list[dict]], labels: list[str], need_dev: bool) -> None:
    for name in SPLITS:
        rows = splits[name]
        if not rows and (name != "dev" or need_dev):
            raise FinetuneError(f"the {name} split is empty" + (" (early stopping needs a dev split)" if name == "dev" else ""))
        bad = sorted({r["label"] for r in rows} - set(labels))
        if bad and name != "test":
            raise FinetuneError(f"the {name} split has labels {bad} that are not in the dataset's labels {labels}")


def _load_encoder(model_path: str, labels: list[str], device: str):
    """(tokenizer, model): the encoder with a fresh classification head of ``len(labels)`` outputs."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)}, ignore_mismatched_sizes=True,
            dtype=torch.float32)  # float32 master weights; bfloat16 autocast on a GPU
    except OSError as err:
        raise FinetuneError(f"cannot load encoder {model_path!r}: {err}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    return tokenizer, model


def _optimizer(model, settings: Settings, total_steps: int):
    """AdamW (no weight decay on biases and norms) with a linear warm-up, then a linear or cosine decay."""
    import torch
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": settings.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate)
    schedules = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}
    if settings.schedule not in schedules:
        raise FinetuneError(f"finetune.schedule: {settings.schedule!r}; allowed: {sorted(schedules)}")
    scheduler = schedules[settings.schedule](optimizer, int(settings.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def train_and_predict(model_path: str, dataset_spec: dict, splits: dict[str, list[dict]], settings: Settings,
                      seed: int, checkpoint_dir: str | Path | None = None) -> FinetuneResult:
    """Fine-tune ``model_path`` for the dataset's labels and task on ``splits["train"]`` (records with an
    ``explanation`` field), pick the best epoch on ``splits["dev"]``, and classify ``splits["test"]``."""
    import torch

    labels = list(dataset_spec["labels"])
    train, dev, test = (splits[name] for name in SPLITS)
    device = _device()
    t0 = time.time()
    _check_splits(splits, labels, settings.early_stopping)

    set_seed(seed)
    tokenizer, model = _load_encoder(model_path, labels, device)

    template = template_for(dataset_spec["task"], settings)
    sep = separator(tokenizer)
    texts = {name: [render_input(r, template, sep) for r in splits[name]] for name in SPLITS}
    log.info("input template %r with separator %r; first training input: %r", template, sep, texts["train"][0])
    seqs = {name: _encode(tokenizer, t, settings.max_length) for name, t in texts.items()}
    label_id = {l: i for i, l in enumerate(labels)}
    y_train = np.array([label_id[r["label"]] for r in train])
    y_dev = np.array([label_id[r["label"]] for r in dev], dtype=int)

    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total_steps = max(1, math.ceil(settings.epochs * steps_per_epoch))
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    optimizer, scheduler = _optimizer(model, settings, total_steps)
    log.info("fine-tuning %s on %s: %d train / %d dev / %d test examples, %d labels, %d epoch(s) of %d steps "
             "(batch %d, lr %g, %s schedule, early stopping %s), seed %d", model_path, device, len(train), len(dev),
             len(test), len(labels), n_epochs, steps_per_epoch, settings.batch_size, settings.learning_rate,
             settings.schedule, "on" if settings.early_stopping else "off", seed)

    rng = np.random.default_rng(seed)
    lengths = [len(s) for s in seqs["train"]]
    history: list[dict] = []
    best_acc, best_epoch, best_state, bad_epochs, step = -1.0, 0, None, 0, 0
    for epoch in range(1, n_epochs + 1):
        model.train()
        running, seen = 0.0, 0
        for batch in _length_grouped_batches(lengths, settings.batch_size, rng):
            if step >= total_steps:
                break
            ids, mask = _collate(tokenizer, [seqs["train"][i] for i in batch], device)
            target = torch.as_tensor(y_train[batch], device=device)
            with _autocast(device):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running += loss.item() * len(batch)
            seen += len(batch)
            if step % settings.log_every_steps == 0:
                log.info("epoch %d step %d/%d loss %.4f (%.0fs)", epoch, step, total_steps, running / seen,
                         time.time() - t0)
        dev_acc = float("nan")
        if dev:
            dev_prob = predict_proba(model, tokenizer, seqs["dev"], settings.eval_batch_size, device)
            dev_acc = float((dev_prob.argmax(1) == y_dev).mean())
        history.append({"epoch": epoch, "step": step, "train_loss": running / max(seen, 1),
                        "dev_accuracy": dev_acc if dev else None, "seconds": time.time() - t0})
        log.info("epoch %d done: step %d, train loss %.4f, dev accuracy %.4f (%.0fs)", epoch, step,
                 running / max(seen, 1), dev_acc, time.time() - t0)
        if not settings.early_stopping:
            best_acc, best_epoch = (dev_acc if dev else None), epoch  # the last epoch classifies the test set
        elif dev_acc > best_acc:
            best_acc, best_epoch, bad_epochs = dev_acc, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if settings.early_stopping_patience and bad_epochs >= settings.early_stopping_patience:
                log.info("early stop: dev accuracy has not improved for %d epoch(s); best epoch %d (%.4f)",
                         bad_epochs, best_epoch, best_acc)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    if settings.keep_checkpoints and checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(checkpoint_dir)
        tokenizer.save_pretrained(checkpoint_dir)
        log.info("kept the best checkpoint (epoch %d) in %s", best_epoch, checkpoint_dir)
    test_prob = predict_proba(model, tokenizer, seqs["test"], settings.eval_batch_size, device)
    preds = [labels[i] for i in test_prob.argmax(1)]
    seconds = time.time() - t0
    log.info("test accuracy %.4f (best epoch %d, %.0fs)",
             float(np.mean([p == r["label"] for p, r in zip(preds, test)])), best_epoch, seconds)
    del model, best_state, optimizer
    if device == "cuda":
        torch.cuda.empty_cache()
    return FinetuneResult(preds, test_prob, history, best_epoch, best_acc, seconds, device)


def run(job) -> dict:
    """Rule finetune: read fold ``{fold}``'s splits (``job.input["examples"]``) with the condition's
    explanations (``job.input["explanations"]``: the explanation file of an llm condition, none
    otherwise), fine-tune the encoder ``job.model`` with the seed of wildcard ``{seed}``, write
    ``job.output`` metrics and predictions."""
    import torch

    from ..explanations.leakage import dataset_label_words
    from .conditions import empty_explanations, load_fold
    from .predictions import RunIdentity, metrics_record, predictions_frame, write_outputs

    torch.set_num_threads(job.threads)
    condition, seed = job.wildcards["condition"], job.wildcard_int("seed")
    splits = load_fold(job.input["examples"], job.wildcard_int("fold"), condition,
                       next(iter(job.input["explanations"]), None), dataset_label_words(job.dataset_spec))
    labels = list(job.dataset_spec["labels"])
    result = train_and_predict(job.model_spec["path"], job.dataset_spec, splits, Settings.from_settings(job.settings),
                               seed, Path(job.output["metrics"]).parent / "checkpoint")
    test = splits["test"]
    training = {"best_epoch": result.best_epoch, "best_dev_accuracy": result.best_dev_accuracy,
                "history": result.history, "seconds": round(result.seconds, 1), "device": result.device,
                "n_train": len(splits["train"]), "n_dev": len(splits["dev"])}
    empty = {name: empty_explanations(rows) for name, rows in splits.items()} if condition != "none" else {}
    metrics = metrics_record(RunIdentity.of(job, "finetune", seed), [r["label"] for r in test], result.predictions,
                             labels, job.settings["bootstrap"], {"n_empty_explanation": empty, "training": training})
    write_outputs(job, predictions_frame(test, result.predictions, labels, result.probabilities), metrics)
    log.info("accuracy %.4f %s, macro-F1 %.4f", metrics["accuracy"], metrics["accuracy_ci"], metrics["macro_f1"])
    return metrics
