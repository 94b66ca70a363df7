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

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data import input_text
from ..io import read_jsonl
from .embeddings import EmbeddingError, Embeddings, write_embeddings
from ..prompts import fill, load_template

log = logging.getLogger(__name__)

SPLITS = ("train", "test")




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


# --------------------------------------------------------------------------- the rule

def embed_dataset(*, train: str | Path, test: str | Path, out: str | Path, model_spec: dict, model_name: str,
                  dataset_spec: dict, dataset_name: str, prompts_dir: str | Path, plr: dict, backend=None) -> Embeddings:
    """Rule ``embed``: read the split files, embed train and test once, write the npz."""
    from ..engines import load_backend

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
