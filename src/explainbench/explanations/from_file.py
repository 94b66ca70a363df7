"""Explanations read from a file: an explainer that someone else ran (``backend: file``).

A published study's explanations (Dhaini et al. 2025 released theirs) stand in for an engine.
A model entry with ``backend: file`` names, per dataset and shots, a CSV/TSV/JSONL/parquet file
(``source.files``, relative to the entry's ``path``), the column that holds the explanation
(``source.text``) and the columns that join a file row to an example (``source.keys``, or
``source.dataset_keys.<dataset>``: ``{id: ...}``, or ``{premise: ..., hypothesis: ...}`` /
``{text: ...}``, compared after whitespace normalisation). Rule ``explain`` then writes the usual
``explanations.jsonl`` (:data:`explainbench.files.EXPLANATION_FIELDS`) from the file, so quality
scoring, fine-tuning and zero-shot classification read them unchanged.

Every example of the dataset must find exactly one row: a key that occurs twice in the file, or
an example that the file lacks, stops the job with a :class:`DataError` naming the file and the
row. A file whose name is missing but whose official per-fold test files are there
(``<stem>_<k>_test.csv``) is read from those (:func:`explainbench.data.official_fold_files`).
An empty explanation cell is kept as the study has it (``finish_reason: empty_in_source``),
counted and logged: the classifiers then see an empty explanation for that example.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..data import read_rows
from ..errors import DataError
from ..files import EMPTY_IN_SOURCE, write_explanations
from .leakage import dataset_label_words, states_label

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def _norm(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return " ".join(str(value).split())


def file_format(path: Path, given: str | None) -> str:
    """How to read ``path``: ``given``, else by its suffix."""
    if given:
        return given
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; set source.format "
                        f"(one of {sorted(set(FORMATS.values()))})")
    return FORMATS[path.suffix.lower()]


def read_source(path: str | Path, text: str, keys: dict[str, str], fmt: str | None = None) -> dict[tuple, tuple]:
    """``key -> (row, explanation)`` of an explanation file: ``key`` is the tuple of the ``keys``
    columns (in the order of ``keys``), whitespace-normalised; a key twice, an empty key or a
    missing column is an error naming the file, the row and the field."""
    path = Path(path)
    rows, kind = read_rows(path, file_format(path, fmt))
    columns = set().union(*(r.keys() for r in rows[:50])) - {"__row__"} if rows else set()
    for col in [text, *keys.values()]:
        if col not in columns:
            raise DataError(f"{path}: column {col!r} not found (source.text / source.keys); columns: {sorted(columns)}")
    out: dict[tuple, tuple] = {}
    for row in rows:
        where = f"{path}, {kind} {row['__row__']}" if kind != "row" else f"{path.parent}/{row['__row__']}"
        key = tuple(_norm(row.get(col)) for col in keys.values())
        if not all(key):
            empty = next(col for col, k in zip(keys.values(), key) if not k)
            raise DataError(f"{where}, field {empty!r}: empty join key")
        if key in out:
            raise DataError(f"{where}, fields {list(keys.values())}: duplicate key {_show(key)} (first at "
                            f"{out[key][0]}): which explanation belongs to the example is ambiguous")
        out[key] = (where, _norm(row.get(text)))
    return out


def _show(key: tuple) -> str:
    return " | ".join(repr(k[:60] + ("..." if len(k) > 60 else "")) for k in key)


def explanation_rows(examples: Sequence[dict], source: dict[tuple, tuple], keys: dict[str, str],
                     where: tuple[str, str], meta: dict) -> list[dict]:
    """One explanation row per example, in the examples' order, from ``source`` (:func:`read_source`).

    ``where`` is (the explanation file, the examples file) for messages; ``meta`` holds ``model``,
    ``dataset``, ``shots``, ``seed`` and ``label_words``. An example that the file lacks is an error
    naming both files and the example's row."""
    path, examples_path = where
    rows = []
    for lineno, ex in enumerate(examples, start=1):
        key = tuple(_norm(ex.get(field)) for field in keys)
        if key not in source:
            fields = ", ".join(f"{f}={ex.get(f)!r:.80}" for f in keys)
            raise DataError(f"{path}: no explanation for {examples_path}, row {lineno} (id {ex['id']!r}; {fields}); "
                            f"joined on fields {list(keys)} = columns {list(keys.values())}")
        text = source[key][1]
        rows.append({"id": ex["id"], "text": text, "states_label": states_label(text, meta["label_words"]),
                     "demo_ids": [], "prompt_hash": None, "finish_reason": "stop" if text else EMPTY_IN_SOURCE,
                     "prompt_tokens": None, "completion_tokens": None, "seconds": 0.0, "model": meta["model"],
                     "dataset": meta["dataset"], "shots": meta["shots"], "seed": meta["seed"]})
    return rows


def run(job) -> list[dict]:
    """Rule ``explain`` for a ``backend: file`` explainer: the file's explanation of every example."""
    from ..config import explanation_source
    from ..files import read_examples

    shots, seed = job.wildcard_int("shots"), job.wildcard_int("seed")
    path, keys = explanation_source(job.model_spec, job.model, job.dataset, shots)
    examples = read_examples(job.input["examples"])
    source = read_source(path, job.model_spec["source"]["text"], keys, job.model_spec["source"]["format"])
    meta = {"model": job.model, "dataset": job.dataset, "shots": shots, "seed": seed,
            "label_words": dataset_label_words(job.dataset_spec)}
    rows = explanation_rows(examples, source, keys, (str(path), str(job.input["examples"])), meta)
    unused = len(source) - len(rows)
    empty = sum(1 for r in rows if not r["text"])
    log.info("%s/%s %dshot: %d explanations from %s (%d file rows not in the dataset); %d empty in the file; "
             "%d name a label (states_label)", job.dataset, job.model, shots, len(rows), path, unused, empty,
             sum(r["states_label"] for r in rows))
    write_explanations(rows, job.output["explanations"])
    return rows


__all__ = ["explanation_rows", "file_format", "read_source", "run"]
