"""Prompt-wrapped embeddings (Buckmann & Hill 2024, arXiv 2408.03414), cached once per model x dataset.

A causal LM embeds each text wrapped in a task prompt (``config/prompts/<task>/embed.yaml``:
what the text is, the question, the options, then "Answer:"); the vector is the hidden state
of the last token of the final layer (``pooling``/``layer`` configurable), so it is the
model's state just before it would answer. Encoders are sentence-embedding models trained on
plain sentences: they embed the plain text (premise and hypothesis joined) with mean pooling,
unless ``wrap_encoder_texts`` is set. One file holds train and test::

    results/embeddings/{dataset}/{model}/embeddings.npz
        ids (str), split (str: train/test/occlusion), labels (str), vectors (float32 n x d),
        meta (JSON string: model path, pooling, layer, template file, ...)

Rows of split ``occlusion`` are the explained test texts with a word or phrase removed
(:mod:`.occlusion`). Learning curves and explanations read this file and load no model: one
engine start per (model, dataset) embeds everything Study 2 asks of the model.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..data import input_text
from ..engines import open_backend
from ..engines.checkpoint import job_checkpoint
from ..files import EmbeddingError, Embeddings, write_embeddings
from ..splits import read_train_test
from ..prompts import dataset_template, fill
from ..workflow import explained_plr_models
from .classifier import check_plr_sizes
from .occlusion import OCCLUSION_SPLIT, OcclusionSettings, occlusion_id, occlusions, pick_texts

if TYPE_CHECKING:
    from ..engines import Backend

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


@dataclass(frozen=True)
class EmbedSettings:
    """How one model embeds: from the model's config entry and the plr section (rule embed's settings)."""

    pooling: str
    layer: int
    wrap: bool
    chunk_size: int

    @classmethod
    def for_model(cls, model_spec: dict, settings: dict) -> "EmbedSettings":
        """Encoders embed the plain text with ``encoder_pooling`` unless ``wrap_encoder_texts``;
        causal LMs embed the wrapped text with ``pooling``."""
        encoder = model_spec["kind"] == "encoder"
        return cls(pooling=settings["encoder_pooling"] if encoder else settings["pooling"], layer=int(settings["layer"]),
                   wrap=bool(settings["wrap_encoder_texts"]) if encoder else True,
                   chunk_size=int(settings["embed_chunk_size"]))


def model_inputs(records: Sequence[dict], template: dict | None, labels: Sequence[str], wrap: bool) -> list[str]:
    """What the model embeds for each record: the wrapped prompt, or the plain text."""
    if wrap:
        if template is None:
            raise EmbeddingError("wrapping texts needs an embed template")
        return [wrap_record(r, template, labels) for r in records]
    return [input_text(r) for r in records]


# --------------------------------------------------------------------------- embedding

@dataclass
class Embedder:
    """A model turning records into vectors: the backend, how it embeds, and the embed prompt
    (``template``, with the dataset's ``labels`` as its options; None when texts are not wrapped)."""

    backend: Backend
    settings: EmbedSettings
    template: dict | None
    labels: Sequence[str]

    @classmethod
    def for_job(cls, job, backend) -> "Embedder":
        """The embedder of a job of rule embed or plr_explain (the job's model and dataset)."""
        settings = EmbedSettings.for_model(job.model_spec, job.settings)
        template = (dataset_template(job.settings["prompts_dir"], "embed", job.dataset, job.dataset_spec)
                    if settings.wrap else None)
        return cls(backend, settings, template, job.dataset_spec["labels"])

    def inputs(self, records: Sequence[dict]) -> list[str]:
        return model_inputs(records, self.template, self.labels, self.settings.wrap)

    def embed(self, texts: Sequence[str], what: str = "texts", chunk_size: int | None = None) -> np.ndarray:
        """Embed in chunks (one ``backend.embed`` call each, ``settings.chunk_size`` texts unless
        ``chunk_size`` is given), logging progress, rate and time left."""
        texts, chunk_size = list(texts), chunk_size or self.settings.chunk_size
        backend, pooling, layer = self.backend, self.settings.pooling, self.settings.layer
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

    def meta(self) -> dict:
        """What the embeddings file records about how its vectors were made."""
        spec, settings, template = self.backend.spec, self.settings, self.template or {}
        return {"model": self.backend.name, "model_path": spec["path"], "backend": spec["backend"],
                "kind": spec["kind"], "pooling": settings.pooling, "layer": settings.layer,
                "wrapped": settings.wrap, "template_file": template.get("__file__") if settings.wrap else None,
                "template": template.get("prompt") if settings.wrap else None, "labels": list(self.labels)}


def embed_splits(embedder: Embedder, splits: dict[str, list[dict]]) -> Embeddings:
    """Embed every record of every split once (in one pass, so the engine starts once)."""
    rows = [(name, rec) for name in SPLITS if name in splits for rec in splits[name]]
    texts = embedder.inputs([r for _, r in rows])
    settings = embedder.settings
    log.info("embedding %d texts (%s) with %s: pooling=%s layer=%d wrapped=%s", len(texts),
             ", ".join(f"{n} {len(splits[n])}" for n in SPLITS if n in splits), embedder.backend.name,
             settings.pooling, settings.layer, settings.wrap)
    if texts:
        log.info("first model input: %r", texts[0])
    if embedder.backend.spec["kind"] == "causal":  # encoders truncate; a causal LM's prompt must fit
        embedder.backend.check_fits(texts, 0, [r["id"] for _, r in rows], "train/test split")
    vectors = embedder.embed(texts)
    return Embeddings(np.array([r["id"] for _, r in rows], dtype=str), np.array([n for n, _ in rows], dtype=str),
                      np.array([r["label"] for _, r in rows], dtype=str), vectors,
                      {**embedder.meta(), "dim": int(vectors.shape[1])})


def embed_occlusions(embedder: Embedder, test_records: Sequence[dict], settings: OcclusionSettings,
                     texts_per_call: int) -> Embeddings:
    """Rule embed's second part: the occluded variants of the explained test texts, embedded as
    rows of split ``occlusion`` (one ``embed`` call per ``texts_per_call`` texts' variants)."""
    texts = pick_texts(test_records, settings.max_texts, settings.seed)
    ids, labels, vectors, t0 = [], [], [], time.time()
    for start in range(0, len(texts), texts_per_call):
        batch = texts[start:start + texts_per_call]
        occ = [(r, o) for r in batch for o in occlusions(r, settings.ngram)]
        if occ:
            vectors.append(embedder.embed(embedder.inputs([o.record for _, o in occ]), what="occlusion texts",
                                          chunk_size=len(occ)))
        ids += [occlusion_id(o) for _, o in occ]
        labels += [r["label"] for r, _ in occ]
        log.info("occlusion: %d/%d texts (%d variants so far), %.0f s", start + len(batch), len(texts), len(ids),
                 time.time() - t0)
    dim = vectors[0].shape[1] if vectors else 0
    return Embeddings(np.array(ids, dtype=str), np.full(len(ids), OCCLUSION_SPLIT), np.array(labels, dtype=str),
                      np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32))


# --------------------------------------------------------------------------- the rule

def run(job) -> Embeddings:
    """Rule ``embed``: read fold 0's train and test (Study 2 is not cross-validated), embed them
    and, for a model whose PLR is explained, the occluded variants of the test texts rule
    plr_explain explains (rows of split ``occlusion``), with one engine start; write the npz."""
    splits = read_train_test(job.input["examples"])
    check_plr_sizes(job, splits["train"])
    out = job.output["embeddings"]
    with job_checkpoint(out) as checkpoint, open_backend(job.model_spec, job.model) as backend:
        engine = checkpoint.wrap(backend)  # a job that dies keeps every finished chunk's vectors
        embedder = Embedder.for_job(job, engine)
        emb = embed_splits(embedder, splits)
        if job.model in explained_plr_models(job.config):
            emb = emb.with_rows(embed_occlusions(embedder, splits["test"], OcclusionSettings.from_settings(job.settings),
                                                 int(job.settings["explain_texts_per_call"])))
        emb.meta["dataset"] = job.dataset
        write_embeddings(emb, out)
        log.info("wrote %s: %d x %d; %s", out, *emb.vectors.shape, engine.report())
    return emb
