"""Explanation conditions: which explanation (if any) a classifier sees with each example.

A condition is

- ``none``: no explanation;
- ``human``: the first human reference of the record; a record without one (9 HealthFC
  claims have an empty ``en_explanation``) gets an empty explanation, counted and logged;
- ``llm-<explainer>-<k>shot``: the ``text`` of that explainer's explanation of the same
  example (its explanation file, matched by id);
- ``llm-<explainer>-<k>shot-masked``: the same with every word that names a label removed
  (:func:`explainbench.explanations.leakage.mask_label_words`), so a leaked label cannot help.

Fine-tuning and zero-shot classification both read their inputs through :func:`load_fold`,
so train, dev and test always use the same source.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from ..explanations.leakage import mask_label_words
from ..files import read_explanations
from ..splits import read_fold
from ..workflow import parse_condition

log = logging.getLogger(__name__)


def _check_condition(condition: str) -> str:
    if condition in ("none", "human"):
        return condition
    parse_condition(condition)  # raises a ValueError naming the bad condition
    return "llm-masked" if condition.endswith("-masked") else "llm"


def attach_explanations(records: list[dict], condition: str, *, source: str | Path = "<records>",
                        explanation_path: str | Path | None = None, label_words: Sequence[str] = ()) -> list[dict]:
    """Copies of ``records`` with an ``explanation`` field for ``condition`` ("" for none).

    ``source`` only names the records' file in messages; ``label_words`` are removed from the
    explanations of a ``-masked`` condition.
    """
    kind = _check_condition(condition)
    if kind == "none":
        return [{**rec, "explanation": ""} for rec in records]
    if kind == "human":
        out, empty = [], []
        for rec in records:
            refs = [r for r in rec.get("explanations") or [] if isinstance(r, str) and r.strip()]
            if not refs:
                empty.append(rec.get("id"))
            out.append({**rec, "explanation": " ".join(refs[0].split()) if refs else ""})
        if empty:
            log.warning("%s: %d of %d examples have no human explanation; condition 'human' gives them an empty "
                        "one (e.g. %s)", source, len(empty), len(records), empty[:3])
        return out
    if explanation_path is None:
        raise ValueError(f"condition {condition!r} needs an explanation file")
    texts = read_explanations(explanation_path)
    out = []
    for rec in records:
        if rec["id"] not in texts:
            raise DataError(f"{explanation_path}, field 'id': no explanation for id {rec['id']!r} (from {source})")
        text = texts[rec["id"]]
        out.append({**rec, "explanation": mask_label_words(text, label_words) if kind == "llm-masked" else text})
    return out


def empty_explanations(records: Sequence[dict]) -> int:
    """How many records have an empty ``explanation`` (after :func:`attach_explanations`)."""
    return sum(1 for r in records if not str(r.get("explanation") or "").strip())


def load_fold(examples_path: str | Path, fold: int, condition: str, explanation_path: str | Path | None = None,
              label_words: Sequence[str] = ()) -> dict[str, list[dict]]:
    """One fold's train/dev/test records (from ``examples.jsonl``) with the condition's explanations."""
    parts = read_fold(examples_path, fold)
    return {name: attach_explanations(rows, condition, source=f"{examples_path} fold {fold} {name}",
                                      explanation_path=explanation_path, label_words=label_words)
            for name, rows in parts.items()}
