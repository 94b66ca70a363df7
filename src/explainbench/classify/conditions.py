"""Explanation conditions: which explanation (if any) a classifier sees with each example.

A condition is ``none`` (no explanation), ``human`` (the first human reference of the
record) or ``llm-<explainer>-<k>shot`` (the ``text`` of that explainer's explanation file
for the same split, matched by id). Fine-tuning and zero-shot classification both read
their inputs through :func:`load_split`, so train, dev and test always use the same source.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..files import read_explanations
from ..io import read_jsonl
from ..workflow import parse_condition


def _check_condition(condition: str) -> str:
    if condition in ("none", "human"):
        return condition
    parse_condition(condition)  # raises a ValueError naming the bad condition
    return "llm"


def attach_explanations(records: list[dict], condition: str, *, split_path: str | Path = "<records>",
                        explanation_path: str | Path | None = None) -> list[dict]:
    """Copies of ``records`` with an ``explanation`` field for ``condition`` ("" for none).

    ``split_path`` only names the records' file in error messages (row = line number).
    """
    kind = _check_condition(condition)
    if kind == "none":
        return [{**rec, "explanation": ""} for rec in records]
    if kind == "human":
        out = []
        for row_no, rec in enumerate(records, start=1):
            refs = [r for r in rec.get("explanations") or [] if isinstance(r, str) and r.strip()]
            if not refs:
                raise DataError(f"{split_path}, row {row_no}, field 'explanations': condition 'human' needs a "
                                f"human explanation, but id {rec.get('id')!r} has none")
            out.append({**rec, "explanation": " ".join(refs[0].split())})
        return out
    if explanation_path is None:
        raise ValueError(f"condition {condition!r} needs an explanation file")
    texts = read_explanations(explanation_path)
    out = []
    for row_no, rec in enumerate(records, start=1):
        if rec["id"] not in texts:
            raise DataError(f"{explanation_path}, field 'id': no explanation for id {rec['id']!r} "
                            f"({split_path}, row {row_no})")
        out.append({**rec, "explanation": texts[rec["id"]]})
    return out


def load_split(split_path: str | Path, condition: str, explanation_path: str | Path | None = None) -> list[dict]:
    """Read a split file and attach the condition's explanations."""
    split_path = Path(split_path)
    if not split_path.exists():
        raise DataError(f"{split_path}: split file not found")
    return attach_explanations(read_jsonl(split_path), condition, split_path=split_path,
                               explanation_path=explanation_path)
