"""The cached embeddings file: one npz per model x dataset, train and test rows together::

    results/embeddings/{dataset}/{model}/embeddings.npz
        ids (str), split (str: train/test), labels (str), vectors (float32 n x d),
        meta (JSON string: model path, pooling, layer, template file, ...)

``explainbench.embed`` writes it (with an engine); learning curves and PLR explanations read
it here, without importing any engine.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ExplainBenchError


class EmbeddingError(ExplainBenchError):
    """An embeddings file is missing, malformed, or does not match the split files."""


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
