"""Prompt-wrapped embeddings (Buckmann & Hill 2024, arXiv 2408.03414), cached once per model x dataset.

A causal LM embeds each text wrapped in a task prompt (``config/prompts/<task>/embed.yaml``:
what the text is, the question, the options, then "Answer:"); the vector is the hidden state
of the last token of the final layer (``pooling``/``layer`` configurable), so it is the
model's state just before it would answer. Encoders are sentence-embedding models trained on
plain sentences: they embed the plain text (premise and hypothesis joined) with mean pooling,
unless ``wrap_encoder_texts`` is set. One file holds train and test::

    results/embeddings/{dataset}/{model}/embeddings.npz
        ids (str), split (str: train/test), labels (str), vectors (float32 n x d),
        meta (JSON string: model path, pooling, layer, template file, ...)

Learning curves and explanations read this file; they never embed the training texts again.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import ExplainBenchError
from .data import input_text, read_jsonl
from .prompts import fill, load_template

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


class EmbeddingError(ExplainBenchError):
    """An embeddings file is missing, malformed, or does not match the split files."""


# --------------------------------------------------------------------------- wrapping

def format_options(labels: Sequence[str]) -> str:
    """``["a"]`` -> "a"; ``["a", "b"]`` -> "a or b"; ``["a", "b", "c"]`` -> "a, b or c"."""
    labels = list(labels)
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " or " + labels[-1]


def wrap_record(record: dict, template: dict, labels: Sequence[str]) -> str:
    """The record inside the task prompt (``template['prompt']``)."""
    values = {k: record[k] for k in ("text", "premise", "hypothesis") if record.get(k) is not None}
    return fill(template, "prompt", options=format_options(labels), **values)


@dataclass
class EmbedSettings:
    """How one model embeds: from the model's config entry and the plr section."""

    pooling: str = "last"
    layer: int = -1
    wrap: bool = True
    chunk_size: int = 256

    @classmethod
    def for_model(cls, model_spec: dict, plr: dict) -> "EmbedSettings":
        if model_spec.get("kind", "causal") == "encoder":
            return cls(pooling=plr.get("encoder_pooling", "mean"), layer=int(plr.get("layer", -1)),
                       wrap=bool(plr.get("wrap_encoder_texts", False)),
                       chunk_size=int(plr.get("embed_chunk_size", 256)))
        return cls(pooling=plr.get("pooling", "last"), layer=int(plr.get("layer", -1)), wrap=True,
                   chunk_size=int(plr.get("embed_chunk_size", 256)))


def model_inputs(records: Sequence[dict], template: dict | None, labels: Sequence[str], wrap: bool) -> list[str]:
    """What the model embeds for each record: the wrapped prompt, or the plain text."""
    if wrap:
        if template is None:
            raise EmbeddingError("wrapping texts needs an embed template")
        return [wrap_record(r, template, labels) for r in records]
    return [input_text(r) for r in records]


# --------------------------------------------------------------------------- embedding

def embed_texts(backend, texts: Sequence[str], *, pooling: str = "last", layer: int = -1,
                chunk_size: int = 256, what: str = "texts") -> np.ndarray:
    """Embed in chunks (one ``backend.embed`` call each), logging progress, rate and time left."""
    texts = list(texts)
    chunks, done, t0 = [], 0, time.time()
    for start in range(0, len(texts), chunk_size):
        batch = texts[start:start + chunk_size]
        vectors = np.asarray(backend.embed(batch, pooling=pooling, layer=layer), dtype=np.float32)
        if vectors.shape[0] != len(batch):
            raise EmbeddingError(f"model {backend.name!r} returned {vectors.shape[0]} vectors for {len(batch)} texts")
        chunks.append(vectors)
        done += len(batch)
        rate = done / max(time.time() - t0, 1e-9)
        log.info("embedded %d/%d %s (%.1f texts/s, about %.0f s left)", done, len(texts), what, rate,
                 (len(texts) - done) / rate)
    if not chunks:
        raise EmbeddingError(f"no {what} to embed")
    vectors = np.concatenate(chunks)
    if not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise EmbeddingError(f"model {backend.name!r}: {bad} of {len(texts)} {what} got non-finite embeddings")
    return vectors


@dataclass
class Embeddings:
    """The contents of an embeddings file (rows: train and test examples)."""

    ids: np.ndarray
    split: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    meta: dict = field(default_factory=dict)

    def part(self, split: str) -> "Embeddings":
        keep = self.split == split
        if not keep.any():
            raise EmbeddingError(f"embeddings ({self.meta.get('model_path', '?')}) hold no {split!r} rows")
        return Embeddings(self.ids[keep], self.split[keep], self.labels[keep], self.vectors[keep], self.meta)


def embed_splits(backend, splits: dict[str, list[dict]], *, labels: Sequence[str], template: dict | None,
                 settings: EmbedSettings) -> Embeddings:
    """Embed every record of every split once (in one pass, so the engine starts once)."""
    rows = [(name, rec) for name in SPLITS if name in splits for rec in splits[name]]
    texts = model_inputs([r for _, r in rows], template, labels, settings.wrap)
    log.info("embedding %d texts (%s) with %s: pooling=%s layer=%d wrapped=%s", len(texts),
             ", ".join(f"{n} {len(splits[n])}" for n in SPLITS if n in splits), backend.name,
             settings.pooling, settings.layer, settings.wrap)
    if texts:
        log.info("first model input: %r", texts[0])
    vectors = embed_texts(backend, texts, pooling=settings.pooling, layer=settings.layer,
                          chunk_size=settings.chunk_size)
    meta = {"model": backend.name, "model_path": backend.spec.get("path"), "backend": backend.spec.get("backend"),
            "kind": backend.spec.get("kind", "causal"), "pooling": settings.pooling, "layer": settings.layer,
            "wrapped": settings.wrap, "template_file": (template or {}).get("__file__") if settings.wrap else None,
            "template": (template or {}).get("prompt") if settings.wrap else None, "labels": list(labels),
            "dim": int(vectors.shape[1])}
    return Embeddings(np.array([r["id"] for _, r in rows], dtype=str), np.array([n for n, _ in rows], dtype=str),
                      np.array([r["label"] for _, r in rows], dtype=str), vectors, meta)


# --------------------------------------------------------------------------- the file

def write_embeddings(emb: Embeddings, path: str | Path) -> None:
    """Write the contract npz atomically (a killed job leaves no half file under the name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, ids=emb.ids.astype(str), split=emb.split.astype(str), labels=emb.labels.astype(str),
                 vectors=emb.vectors.astype(np.float32), meta=np.array(json.dumps(emb.meta)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_embeddings(path: str | Path) -> Embeddings:
    path = Path(path)
    if not path.exists():
        raise EmbeddingError(f"{path}: embeddings file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"ids", "split", "labels", "vectors", "meta"} - set(data.files)
            if missing:
                raise EmbeddingError(f"{path}: missing arrays {sorted(missing)}")
            emb = Embeddings(data["ids"].astype(str), data["split"].astype(str), data["labels"].astype(str),
                             data["vectors"].astype(np.float32), json.loads(str(data["meta"])))
    except (ValueError, OSError) as err:
        raise EmbeddingError(f"{path}: cannot read embeddings: {err}") from None
    n = len(emb.ids)
    for name in ("split", "labels", "vectors"):
        if len(getattr(emb, name)) != n:
            raise EmbeddingError(f"{path}: array {name!r} has {len(getattr(emb, name))} rows, ids has {n}")
    return emb


def check_against_splits(emb: Embeddings, splits: dict[str, list[dict]], path: str | Path) -> None:
    """The cached vectors must belong to the current split files (same ids, same labels, same order)."""
    for name, records in splits.items():
        part = emb.part(name)
        ids = [r["id"] for r in records]
        if list(part.ids) != ids:
            extra = sorted(set(ids) - set(part.ids))[:3]
            raise EmbeddingError(f"{path}: {name} ids differ from the {name} split file ({len(part.ids)} vs {len(ids)} "
                                 f"rows; e.g. not embedded: {extra}); re-run rule embed")
        labels = [r["label"] for r in records]
        if list(part.labels) != labels:
            row = next(i for i, (a, b) in enumerate(zip(part.labels, labels)) if a != b)
            raise EmbeddingError(f"{path}: {name} row {row} (id {ids[row]!r}), field 'label': "
                                 f"{str(part.labels[row])!r} in the embeddings, {labels[row]!r} in the split file")


# --------------------------------------------------------------------------- the rule

def embed_dataset(*, train: str | Path, test: str | Path, out: str | Path, model_spec: dict, model_name: str,
                  dataset_spec: dict, dataset_name: str, prompts_dir: str | Path, plr: dict, backend=None) -> Embeddings:
    """Rule ``embed``: read the split files, embed train and test once, write the npz."""
    from .backends import load_backend

    splits = {"train": read_jsonl(train), "test": read_jsonl(test)}
    settings = EmbedSettings.for_model(model_spec, plr)
    task = dataset_spec.get("task", "nli")
    template = load_template(prompts_dir, "embed", dataset_name, task) if settings.wrap else None
    own = backend is None
    backend = backend or load_backend(model_spec, name=model_name)
    try:
        emb = embed_splits(backend, splits, labels=dataset_spec["labels"], template=template, settings=settings)
    finally:
        if own:
            backend.close()
    emb.meta["dataset"] = dataset_name
    write_embeddings(emb, out)
    log.info("wrote %s: %d x %d", out, *emb.vectors.shape)
    return emb
