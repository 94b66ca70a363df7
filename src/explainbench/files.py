"""The intermediate files between stages: each file's columns (or fields), its writer and its
checked reader, in one place that the stage writing a file and the stages reading it both import.

=====================================================  ==========================================
file (``workflow/rules/common.smk`` PATHS)              columns / fields; writer; reader
=====================================================  ==========================================
``data/{dataset}/examples.jsonl``                      a record + :data:`explainbench.splits.PLACEMENT_FIELDS`;
                                                       :func:`write_examples`; :func:`read_examples`
                                                       (one fold: :func:`explainbench.splits.read_fold`)
``data/{dataset}/sample.csv``                          :data:`SAMPLE_COLUMNS`; :func:`write_sample_ids`
``explanations/.../{split}.jsonl``                     :data:`EXPLANATION_FIELDS`;
                                                       :func:`write_explanations`;
                                                       :func:`read_explanation_rows`,
                                                       :func:`read_explanations`
``quality/.../corpus.csv``                             :data:`CORPUS_COLUMNS`; :func:`write_corpus`;
                                                       :func:`read_corpus`
``finetune|zeroshot/.../metrics.json``                 :data:`METRICS_KEYS` first; :func:`write_metrics`;
                                                       :func:`read_metrics`, :func:`read_run`
``finetune|zeroshot/.../predictions.csv``              :data:`PREDICTION_COLUMNS` (+ ``score_<label>``);
                                                       :func:`write_predictions`;
                                                       :func:`read_predictions`, :func:`read_run`
``embeddings/.../embeddings.npz``                      :class:`Embeddings`; :func:`write_embeddings`;
                                                       :func:`read_embeddings`,
                                                       :func:`check_against_splits`
``plr/.../curve.csv``                                  :data:`CURVE_COLUMNS`; :func:`write_curve`;
                                                       :func:`read_curve`
``plr/.../phrases.csv``                                :data:`PHRASE_COLUMNS`; :func:`write_phrases`;
                                                       :func:`read_phrases`
``plr/.../stability.csv``                              :data:`STABILITY_COLUMNS`;
                                                       :func:`write_stability`; :func:`read_stability`
=====================================================  ==========================================

(:func:`read_jsonl_rows` reads any JSONL file that must exist and hold rows, a split file too.)
Every write goes through :mod:`explainbench.io` (atomic). A checked reader raises
:class:`~explainbench.errors.DataError` naming the file, the row (a file line; a CSV's header
is line 1) and the field. The run a file belongs to (dataset, model, shots, seed) is read from
its contents, never from its path.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import DataError
from .io import atomic_path, read_jsonl_objects, write_csv, write_json, write_jsonl

EXPLANATION_FIELDS = ("id", "text", "states_label", "demo_ids", "prompt_hash", "finish_reason", "prompt_tokens",
                      "completion_tokens", "seconds", "model", "dataset", "shots", "seed")
# finish_reason of an explanation that a file explainer's source left empty: kept as the study has it
EMPTY_IN_SOURCE = "empty_in_source"
SAMPLE_COLUMNS = ["id", "label", "test_fold", "demonstration", "premise", "hypothesis", "text"]
CORPUS_COLUMNS = ["dataset", "fold", "explainer", "shots", "seed", "metric", "value", "ci_low", "ci_high", "n"]
METRICS_KEYS = ["dataset", "classifier", "method", "condition", "fold", "seed", "model_path", "n", "n_invalid",
                "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci"]
PREDICTION_COLUMNS = ["id", "gold", "pred", "correct"]
CURVE_COLUMNS = ["dataset", "model", "n_per_class", "draw", "accuracy", "macro_f1", "C"]
PHRASE_COLUMNS = ["dataset", "model", "label", "phrase", "ngram", "mean_contribution", "sd_over_draws", "count",
                  "rank"]
STABILITY_COLUMNS = ["dataset", "model", "label", "comparison", "n_a", "n_b", "draw_a", "draw_b", "n_words",
                     "spearman"]


# ============================================================================ checked reading

def _read_csv(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """A CSV read as strings (nothing is guessed), its columns checked."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (expected a header with columns {list(required)})") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: not a valid CSV ({err})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def _number(path, row: int, name: str, value, *, allow_empty: bool = True, integer: bool = False) -> float:
    """One cell as a number; ``row`` counts file lines (the header is line 1)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "null")):
        if allow_empty:
            return float("nan")
        raise DataError(f"{path}, row {row}, field {name!r}: empty, a number is required")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}, row {row}, field {name!r}: not a number: {value!r}") from None
    if integer and not (math.isfinite(out) and out == int(out)):
        raise DataError(f"{path}, row {row}, field {name!r}: not an integer: {value!r}")
    return out


def _numbers(df: pd.DataFrame, path, name: str, **kw) -> np.ndarray:
    return np.array([_number(path, i + 2, name, v, **kw) for i, v in enumerate(df[name].tolist())], dtype=float)


def _integers(df: pd.DataFrame, path, name: str) -> np.ndarray:
    return _numbers(df, path, name, allow_empty=False, integer=True).astype(int)


def _check_filled(df: pd.DataFrame, path, names: Iterable[str]) -> None:
    for name in names:
        empty = df.index[df[name].str.strip() == ""]
        if len(empty):
            raise DataError(f"{path}, row {empty[0] + 2}, field {name!r}: empty")


def _check_unique(df: pd.DataFrame, path, names: Sequence[str]) -> None:
    dup = df.index[df.duplicated(list(names))]
    if len(dup):
        fields = ",".join(repr(n) for n in names)
        value = ", ".join(str(df.at[dup[0], n]) for n in names)
        value = f"({value})" if len(names) > 1 else repr(df.at[dup[0], names[0]])
        raise DataError(f"{path}, row {dup[0] + 2}, field{'s' if len(names) > 1 else ''} {fields}: {value} appears twice")


def _one_run(df: pd.DataFrame, path, keys: Sequence[str]) -> None:
    runs = df[list(keys)].drop_duplicates()
    if len(runs) != 1:
        raise DataError(f"{path}: holds more than one run {runs.to_dict('records')}; expected one {'/'.join(keys)}")


def _read_json(path: str | Path, required: Sequence[str]) -> dict:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{path}: missing field(s) {missing}")
    return obj


def _write_columns(frame: pd.DataFrame, columns: Sequence[str], path: str | Path) -> None:
    """``frame``'s contract columns, in contract order, as CSV."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: the table to write lacks column(s) {missing}")
    write_csv(frame[list(columns)], path)


# ============================================================================ examples.jsonl, sample.csv

def write_examples(examples: Iterable[dict], path: str | Path) -> None:
    """Every example of a dataset with its placement (test fold, dev folds, demonstration rank)."""
    write_jsonl(examples, path)


def _optional_int(path, lineno: int, row: dict, name: str) -> None:
    value = row.get(name, "missing")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise DataError(f"{path}, row {lineno}, field {name!r}: expected a fold number or null, got {value!r}")


def _unique_id(path, lineno: int, row: dict, seen: dict[str, int]) -> str:
    """The row's ``id``: a non-empty string not seen before (``seen``: id -> line, updated)."""
    rid = row.get("id")
    if not isinstance(rid, str) or not rid:
        raise DataError(f"{path}, row {lineno}, field 'id': missing or empty id")
    if rid in seen:
        raise DataError(f"{path}, row {lineno}, field 'id': duplicate id {rid!r} (first at row {seen[rid]})")
    seen[rid] = lineno
    return rid


def read_examples(path: str | Path) -> list[dict]:
    """A checked ``examples.jsonl``: unique ids, a label, ``test_fold`` and ``demonstration``
    (an integer or null) and ``dev_folds`` (a list of integers) on every row."""
    rows, seen = [], {}
    for lineno, row in read_jsonl_rows(path, "examples file"):
        rid = _unique_id(path, lineno, row, seen)
        if not isinstance(row.get("label"), str):
            raise DataError(f"{path}, row {lineno}, field 'label': missing label for id {rid!r}")
        _optional_int(path, lineno, row, "test_fold")
        _optional_int(path, lineno, row, "demonstration")
        dev = row.get("dev_folds")
        if not isinstance(dev, list) or not all(isinstance(f, int) and not isinstance(f, bool) for f in dev):
            raise DataError(f"{path}, row {lineno}, field 'dev_folds': expected a list of fold numbers, got {dev!r}")
        rows.append(row)
    return rows


def write_sample_ids(examples: Iterable[dict], path: str | Path) -> None:
    """The sampled examples, one row each (:data:`SAMPLE_COLUMNS`), for a reader to compare with
    another study's sample; the texts are in ``examples.jsonl`` beside it."""
    rows = [{k: ex.get(k) if ex.get(k) is not None else "" for k in SAMPLE_COLUMNS} for ex in examples]
    write_csv(pd.DataFrame(rows, columns=SAMPLE_COLUMNS), path)


# ============================================================================ explanations (JSONL)

def write_explanations(rows: Iterable[dict], path: str | Path) -> None:
    """Explanation rows (each with every field of :data:`EXPLANATION_FIELDS`), in that order."""
    write_jsonl(({k: row[k] for k in EXPLANATION_FIELDS} for row in rows), path)


def read_jsonl_rows(path: str | Path, what: str = "file") -> list[tuple[int, dict]]:
    """(line number, object) of a JSONL file (a split or explanation file) that exists and
    holds at least one row; ``what`` names the file in the error."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    rows = read_jsonl_objects(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_explanation_rows(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, row) of an explanation file: at least one row, each with a unique non-empty
    ``id`` and a non-empty ``text`` (an explainer that wrote nothing for an example is an error:
    the job that wrote the file logs how many, and the file should be regenerated). The one
    exception: a file explainer's row whose source left it empty (``finish_reason``
    :data:`EMPTY_IN_SOURCE`) keeps its empty text, as the study had it."""
    rows = read_jsonl_rows(path, "explanation file")
    seen: dict[str, int] = {}
    for lineno, row in rows:
        rid = _unique_id(path, lineno, row, seen)
        text = row.get("text")
        if text == "" and row.get("finish_reason") == EMPTY_IN_SOURCE:
            continue
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}, row {lineno}, field 'text': missing or empty explanation for id {rid!r}")
    return rows


def read_explanations(path: str | Path) -> dict[str, str]:
    """``id -> text`` of an explanation file (file order; whitespace runs become one space)."""
    return {row["id"]: " ".join(row["text"].split()) for _, row in read_explanation_rows(path)}


# ============================================================================ corpus.csv

def write_corpus(frame: pd.DataFrame, path: str | Path) -> None:
    """One run's corpus-level quality, tidy: one row per metric."""
    _write_columns(frame, CORPUS_COLUMNS, path)


def read_corpus(path: str | Path) -> pd.DataFrame:
    """One ``corpus.csv`` with its numbers checked: one run (dataset, fold, explainer, shots, seed),
    each metric once; a ``source`` column holds the path."""
    raw = _read_csv(path, CORPUS_COLUMNS)
    if raw.empty:
        raise DataError(f"{path}: no metric rows")
    df = raw[CORPUS_COLUMNS].copy()
    for name in ("value", "ci_low", "ci_high"):
        df[name] = _numbers(raw, path, name)
    df["n"] = _numbers(raw, path, "n", integer=True)
    df["fold"] = _integers(raw, path, "fold")
    df["shots"] = _integers(raw, path, "shots")
    df["seed"] = _integers(raw, path, "seed")
    _check_filled(df, path, ("dataset", "explainer", "metric"))
    _one_run(df, path, ("dataset", "fold", "explainer", "shots", "seed"))
    _check_unique(df, path, ("metric",))
    df["source"] = str(path)
    return df


# ============================================================================ metrics.json + predictions.csv

def write_metrics(record: dict, path: str | Path) -> None:
    """A classification run's metrics (:data:`METRICS_KEYS` and any extra fields)."""
    missing = [k for k in METRICS_KEYS if k not in record]
    if missing:
        raise ValueError(f"{path}: the metrics to write lack field(s) {missing}")
    write_json(record, path)


def write_predictions(frame: pd.DataFrame, path: str | Path) -> None:
    """A classification run's predictions: :data:`PREDICTION_COLUMNS` (+ ``score_<label>``)."""
    if list(frame.columns[:len(PREDICTION_COLUMNS)]) != PREDICTION_COLUMNS:
        raise ValueError(f"{path}: predictions must start with columns {PREDICTION_COLUMNS}, got {list(frame.columns)}")
    write_csv(frame, path)


_TRUE = {"1", "1.0", "true", "t", "yes"}
_FALSE = {"0", "0.0", "false", "f", "no"}


def read_predictions(path: str | Path) -> pd.DataFrame:
    """``predictions.csv`` (:data:`PREDICTION_COLUMNS`) with ``correct`` as 0/1, checked against ``gold == pred``."""
    raw = _read_csv(path, PREDICTION_COLUMNS)
    correct = []
    for i, value in enumerate(raw["correct"].tolist()):
        v = value.strip().lower()
        if v in _TRUE:
            correct.append(1.0)
        elif v in _FALSE:
            correct.append(0.0)
        else:
            raise DataError(f"{path}, row {i + 2}, field 'correct': expected 0/1 or true/false, got {value!r}")
    df = raw[PREDICTION_COLUMNS].copy()
    df["correct"] = correct
    _check_filled(df, path, ("id",))
    _check_unique(df, path, ("id",))
    agree = (df["gold"] == df["pred"]).astype(float) == df["correct"]
    if not agree.all():
        i = int(np.flatnonzero(~agree.to_numpy())[0])
        raise DataError(f"{path}, row {i + 2}, field 'correct': {raw.at[i, 'correct']!r} but gold is "
                        f"{df.at[i, 'gold']!r} and pred is {df.at[i, 'pred']!r}")
    return df


def _interval(obj: dict, key: str, path) -> tuple[float, float]:
    ci = obj[key]
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        raise DataError(f"{path}, field {key!r}: expected [low, high], got {ci!r}")
    return tuple(float("nan") if v is None else float(v) for v in ci)


def read_metrics(path: str | Path) -> dict:
    """A checked ``metrics.json``: every field of :data:`METRICS_KEYS`, method ``finetune`` or
    ``zeroshot``, a fold number, an integer (or null) seed, numeric scores; the ``*_ci`` intervals as
    (low, high) floats (NaN where null)."""
    m = _read_json(path, METRICS_KEYS)
    if m["method"] not in ("finetune", "zeroshot"):
        raise DataError(f"{path}, field 'method': {m['method']!r}; expected 'finetune' or 'zeroshot'")
    if isinstance(m["seed"], str) and m["seed"].strip().isdigit():
        m["seed"] = int(m["seed"])  # a seed taken from a wildcard may arrive as text
    if m["seed"] is not None and (not isinstance(m["seed"], int) or isinstance(m["seed"], bool)):
        raise DataError(f"{path}, field 'seed': {m['seed']!r}; expected an integer or null")
    if not isinstance(m["fold"], int) or isinstance(m["fold"], bool) or m["fold"] < 0:
        raise DataError(f"{path}, field 'fold': {m['fold']!r}; expected a fold number (0 without cross-validation)")
    for key in ("accuracy", "macro_f1", "n", "n_invalid"):
        if not isinstance(m[key], (int, float)) or isinstance(m[key], bool):
            raise DataError(f"{path}, field {key!r}: not a number: {m[key]!r}")
    for key in ("accuracy_ci", "macro_f1_ci"):
        m[key] = _interval(m, key, path)
    return m


def read_run(metrics_path: str | Path, predictions_path: str | Path) -> tuple[dict, pd.DataFrame]:
    """One classification run: its checked metrics and predictions, which must agree on n and accuracy."""
    m = read_metrics(metrics_path)
    preds = read_predictions(predictions_path)
    if len(preds) != m["n"]:
        raise DataError(f"{metrics_path}, field 'n': {m['n']} but {predictions_path} has {len(preds)} rows")
    if len(preds) and abs(preds["correct"].mean() - m["accuracy"]) > 1e-9:
        raise DataError(f"{metrics_path}, field 'accuracy': {m['accuracy']} but {predictions_path} gives "
                        f"{preds['correct'].mean():.6f}; the two files are from different runs")
    return m, preds


# ============================================================================ embeddings.npz

class EmbeddingError(DataError):
    """An embeddings file is missing, malformed, or does not match the split files."""


@dataclass
class Embeddings:
    """The contents of an embeddings file: one npz per model x dataset, train and test rows
    together (and rule plr_explain's occluded texts): ``ids``, ``split`` (train/test/occlusion),
    ``labels`` (str), ``vectors`` (float32 n x d) and ``meta`` (model path, pooling, layer,
    template file, ...; stored as a JSON string)."""

    ids: np.ndarray
    split: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    meta: dict = field(default_factory=dict)

    def with_rows(self, other: "Embeddings") -> "Embeddings":
        """These rows, then ``other``'s (this file's meta)."""
        return Embeddings(*(np.concatenate([getattr(self, a), getattr(other, a)])  # str arrays: the wider width
                            for a in ("ids", "split", "labels", "vectors")), self.meta)

    def part(self, split: str) -> "Embeddings":
        keep = self.split == split
        if not keep.any():
            raise EmbeddingError(f"embeddings ({self.meta.get('model_path', '?')}) hold no {split!r} rows")
        return Embeddings(self.ids[keep], self.split[keep], self.labels[keep], self.vectors[keep], self.meta)


def write_embeddings(emb: Embeddings, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, ids=emb.ids.astype(str), split=emb.split.astype(str), labels=emb.labels.astype(str),
                 vectors=emb.vectors.astype(np.float32), meta=np.array(json.dumps(emb.meta)))


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


# ============================================================================ curve.csv, phrases.csv, stability.csv

def write_curve(frame: pd.DataFrame, path: str | Path) -> None:
    """A PLR learning curve: one row per n per class x draw."""
    _write_columns(frame, CURVE_COLUMNS, path)


def read_curve(path: str | Path) -> pd.DataFrame:
    """One ``curve.csv`` with its numbers checked: one dataset x model, each (n per class,
    draw) once; a ``source`` column holds the path."""
    raw = _read_csv(path, CURVE_COLUMNS)
    if raw.empty:
        raise DataError(f"{path}: no rows")
    df = raw[CURVE_COLUMNS].copy()
    for name in ("n_per_class", "draw"):
        df[name] = _integers(raw, path, name)
    for name in ("accuracy", "macro_f1"):
        df[name] = _numbers(raw, path, name, allow_empty=False)
    df["C"] = _numbers(raw, path, "C")
    _one_run(df, path, ("dataset", "model"))
    _check_unique(df, path, ("n_per_class", "draw"))
    df["source"] = str(path)
    return df


def write_phrases(frame: pd.DataFrame, path: str | Path) -> None:
    """The PLR's top phrases per label (occlusion)."""
    _write_columns(frame, PHRASE_COLUMNS, path)


def read_phrases(path: str | Path) -> pd.DataFrame:
    """One ``phrases.csv`` with ``rank`` and ``count`` (integers) and the contributions checked."""
    raw = _read_csv(path, PHRASE_COLUMNS)
    df = raw[PHRASE_COLUMNS].copy()
    for name in ("rank", "count", "ngram"):
        df[name] = _integers(raw, path, name)
    for name in ("mean_contribution", "sd_over_draws"):
        df[name] = _numbers(raw, path, name)
    return df


def write_stability(frame: pd.DataFrame, path: str | Path) -> None:
    """How stable the word importances are: Spearman correlation per label, between two draws at one
    n per class (``comparison`` draws) or between two n (``comparison`` n, means over draws)."""
    _write_columns(frame, STABILITY_COLUMNS, path)


def read_stability(path: str | Path) -> pd.DataFrame:
    """One ``stability.csv``, its numbers checked (``draw_a``/``draw_b`` empty for comparison n)."""
    raw = _read_csv(path, STABILITY_COLUMNS)
    df = raw[STABILITY_COLUMNS].copy()
    bad = sorted(set(df["comparison"]) - {"draws", "n"})
    if bad:
        raise DataError(f"{path}, field 'comparison': {bad[0]!r}; expected draws or n")
    for name in ("n_a", "n_b", "n_words"):
        df[name] = _integers(raw, path, name)
    for name in ("draw_a", "draw_b", "spearman"):
        df[name] = _numbers(raw, path, name)
    if len(df):  # one draw at one n: nothing to compare, no rows
        _one_run(df, path, ("dataset", "model"))
    df["source"] = str(path)
    return df
