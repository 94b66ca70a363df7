"""One record shape for every dataset, and the loaders that produce it.

A record is a flat dict (JSON-friendly, one line of a JSONL file)::

    {"id": "esnli-dev-0", "label": "neutral",
     "premise": "...", "hypothesis": "...",      # task nli
     "text": "...",                               # task classification
     "explanations": ["...", "..."]}              # human references, possibly empty

Every loader checks what it reads; bad input raises :class:`DataError` naming the file,
the row and the field.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataError
from .io import decode_line, read_jsonl_objects

FIELDS = ("id", "text", "premise", "hypothesis", "label", "explanations")

HEALTHFC_LABELS = ["supported", "not enough information", "refuted"]

# Column mappings of the built-in formats (record field -> column in the file).
BUILTIN_COLUMNS: dict[str, dict[str, Any]] = {
    "esnli": {"id": "id", "premise": "premise", "hypothesis": "hypothesis", "label": "label",
              "explanations": "explanations"},
    # The HF hub copy of e-SNLI: integer labels and three explanation columns.
    "esnli-hub": {"premise": "premise", "hypothesis": "hypothesis", "label": "label",
                  "explanations": ["explanation_1", "explanation_2", "explanation_3"]},
    # HealthFC (Vladika et al. 2024): the NLI pair is (evidence sentences, claim).
    "healthfc": {"premise": "en_top_sentences", "hypothesis": "en_claim", "label": "label",
                 "explanations": "en_explanation"},
}


def _where(path: str | Path, row: int | None = None, field: str | None = None) -> str:
    out = str(path)
    if row is not None:
        out += f", row {row}"
    if field is not None:
        out += f", field {field!r}"
    return out


# --------------------------------------------------------------------------- reading tables

def is_hub(path: str | Path, fmt: str) -> bool:
    """A ``hub`` dataset, or an ``esnli`` path that is no local file (then it is a hub id)."""
    return fmt == "hub" or (fmt == "esnli" and not Path(path).exists() and not str(path).endswith(".jsonl"))


def _read_table(path: str | Path, fmt: str, hub_split: str = "validation",
                hub_config: str | None = None) -> tuple[list[dict], str]:
    """Read raw rows and say what a row number means in this file."""
    if is_hub(path, fmt):
        return _read_hub(str(path), hub_split, hub_config), "example"
    path = Path(path)
    if not path.exists() and official_fold_files(path):
        return _read_fold_files(path, fmt)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file (a dataset's path names one {fmt} file)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty: no rows")
    if fmt in ("csv", "tsv", "healthfc"):
        _check_utf8(path)
    if fmt in ("jsonl", "esnli"):
        rows = []
        for lineno, row in read_jsonl_objects(path):
            row["__row__"] = lineno
            rows.append(row)
        return rows, "line"
    if fmt in ("csv", "tsv", "healthfc"):
        sep = "\t" if fmt == "tsv" or (fmt == "csv" and path.suffix == ".tsv") else ","
        try:
            frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                                quoting=3 if sep == "\t" else 0)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: no rows (the file holds only blank lines)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot parse as {fmt.upper()}: {err}") from None
    elif fmt == "parquet":
        frame = pd.read_parquet(path)
    else:  # pragma: no cover - the schema forbids other formats
        raise DataError(f"{path}: unknown format {fmt!r}")
    frame.columns = [str(c).strip() for c in frame.columns]
    rows = frame.to_dict(orient="records")
    for i, row in enumerate(rows, start=1):
        row["__row__"] = i
    return rows, "data row"


FOLD_COLUMN = "fold"


def official_fold_files(path: str | Path) -> list[Path]:
    """The per-fold test files that stand for a missing ``<stem>.csv``: ``<stem>_0_test.csv``,
    ``<stem>_1_test.csv``, ... as a study's official code writes its cross-validation splits
    (Dhaini et al.: ``<name>_<model>_<type>_<k>_{train,test}.csv``); [] when there are none."""
    path = Path(path)
    out = []
    while (path.parent / f"{path.stem}_{len(out)}_test{path.suffix}").exists():
        out.append(path.parent / f"{path.stem}_{len(out)}_test{path.suffix}")
    return out


def _read_fold_files(path: Path, fmt: str) -> tuple[list[dict], str]:
    """The rows of every fold's test file (:func:`official_fold_files`), each with its fold in
    column ``fold``; a row is named by its file and data row (``esnli_gpt4o_ZS_3_test.csv, data row 7``)."""
    rows = []
    for fold, part in enumerate(official_fold_files(path)):
        part_rows, kind = _read_table(part, fmt)
        for row in part_rows:
            rows.append({**row, FOLD_COLUMN: str(fold), "__row__": f"{part.name}, {kind} {row['__row__']}"})
    return rows, "row"


def read_rows(path: str | Path, fmt: str) -> tuple[list[dict], str]:
    """The raw rows of a local table (``csv``, ``tsv``, ``jsonl``, ``parquet``), each with its row
    number in ``__row__``, and what that number counts ("data row", "line"; "row" when it is a
    text naming one of the official per-fold files); checked as a dataset file is."""
    return _read_table(path, fmt)


def _check_utf8(path: Path) -> None:
    """A table file is UTF-8 text: a byte that is not raises DataError naming the row (the file's
    line; data row = line - 1 below a header)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            decode_line(raw, path, lineno)


def _read_hub(hub_id: str, split: str, config_name: str | None = None) -> list[dict]:
    import datasets  # heavy import, only when a hub id is used

    try:
        table = datasets.load_dataset(hub_id, config_name, split=split)
    except Exception as err:  # noqa: BLE001 - re-raised with the id named
        subset = f", subset {config_name!r}" if config_name else ""
        raise DataError(f"hub dataset {hub_id!r} (split {split!r}{subset}): cannot load: {err}") from None
    rows = table.to_list()
    for i, row in enumerate(rows, start=1):
        row["__row__"] = i
    return rows


# --------------------------------------------------------------------------- records

def _columns_for(fmt: str, task: str, columns: dict, path: str) -> dict[str, Any]:
    if fmt == "esnli" and is_hub(path, fmt):
        base = dict(BUILTIN_COLUMNS["esnli-hub"])
    else:
        base = dict(BUILTIN_COLUMNS.get(fmt, {}))
    if not base:
        base = {"id": "id", "label": "label"}
        if task == "nli":
            base.update(premise="premise", hypothesis="hypothesis")
        else:
            base.update(text="text")
    base.update(columns or {})
    return base


def _label_name(value: Any, labels: list[str], where: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        raise DataError(f"{where}: label is missing")
    if isinstance(value, (dict, list, bool)):
        raise DataError(f"{where}: expected a label name or index, got {json.dumps(value)[:80]}")
    text = str(value).strip()
    if text in labels:
        return text
    try:
        index = int(float(text))
    except ValueError:
        index = None
    if index is not None and float(text) == index and 0 <= index < len(labels):
        return labels[index]
    raise DataError(f"{where}: unknown label {text!r}; allowed: {labels} (or their indices 0..{len(labels) - 1})")


def _text(value: Any, where: str = "") -> str:
    """A cell as one line of text; a JSON object or list where text belongs is an error (it
    would otherwise be stringified into the text the models read)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (dict, list, tuple)):
        kind = "a JSON object" if isinstance(value, dict) else "a JSON list"
        raise DataError(f"{where}: expected text, got {kind} ({json.dumps(value, ensure_ascii=False, default=str)[:80]})")
    return " ".join(str(value).split())


SOURCE_FOLD = "source_fold"  # a record's test fold as its file gives it (split.folds_from)


def _fold(value: Any, folds: int, where: str) -> int:
    """A fold number from a file's fold column: an integer 0 .. folds-1."""
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value).strip()
    try:
        fold = int(float(text))
    except ValueError:
        fold = None
    if fold is None or float(text) != fold or not 0 <= fold < folds:
        raise DataError(f"{where}: expected a fold number 0..{folds - 1} (split.folds_from, split.folds {folds}), "
                        f"got {text!r}")
    return fold


def load_records(path: str | Path, *, format: str, labels: list[str], task: str = "nli",
                 columns: dict | None = None, id_prefix: str | None = None) -> list[dict]:
    """Load a dataset file into records, checking every row.

    ``columns`` maps record fields to the file's columns (see ``BUILTIN_COLUMNS`` for the
    built-in formats). Integer labels index ``labels``. Rows without an id get
    ``{id_prefix}-{row}`` (the file's stem by default). A hub dataset is read through
    :func:`load_dataset`, whose entry names the hub split.
    """
    spec = {"format": format, "labels": labels, "task": task, "columns": columns or {}, "hub_split": "validation"}
    return _load(path, spec, id_prefix or Path(str(path)).stem)


def _load(path: str | Path, spec: dict, id_prefix: str) -> list[dict]:
    """Records of ``path`` read as dataset entry ``spec`` says; generated ids are ``{id_prefix}-{row}``."""
    return _load_rows(path, spec, id_prefix)[0]


def _load_rows(path: str | Path, spec: dict, id_prefix: str) -> tuple[list[dict], dict[str, str]]:
    """:func:`_load`, and where each record came from (id -> "line 12", "data row 3", ...)."""
    format, labels, task, columns = spec["format"], spec["labels"], spec["task"], spec["columns"]
    rows, row_kind = _read_table(path, format, spec["hub_split"], spec.get("hub_config"))
    if not rows:
        raise DataError(f"{path}: no rows (the file holds only blank lines)")
    mapping = _columns_for(format, task, columns or {}, str(path))
    needed = ["label"] + (["premise", "hypothesis"] if task == "nli" else ["text"])
    available = set().union(*(r.keys() for r in rows[:50])) if rows else set()
    if "explanations" not in mapping and "explanations" in available:
        mapping["explanations"] = "explanations"  # picked up when present, never required
    for field in needed + ["id", "explanations"]:
        cols = mapping.get(field)
        if cols is None:
            if field in needed:
                raise DataError(f"{path}: no column is mapped to field {field!r} (set columns.{field})")
            continue
        for col in [cols] if isinstance(cols, str) else cols:
            if col not in available:
                if field == "id" and "id" not in (columns or {}):
                    mapping["id"] = None  # ids are generated
                    continue
                raise DataError(f"{path}: column {col!r} (field {field!r}) not found; columns: {sorted(available - {'__row__'})}")

    folds_from = (spec.get("split") or {}).get("folds_from")
    if folds_from and folds_from not in available:
        raise DataError(f"{path}: column {folds_from!r} (split.folds_from) not found; "
                        f"columns: {sorted(available - {'__row__'})}")
    prefix = id_prefix
    records, seen = [], {}
    for row in rows:
        n = row["__row__"]
        rec: dict[str, Any] = {}
        rec["id"] = _text(row.get(mapping["id"]), _where(path, n, mapping["id"])) if mapping.get("id") else f"{prefix}-{n}"
        if not rec["id"]:
            raise DataError(f"{_where(path, n, mapping['id'])}: empty id ({row_kind} {n})")
        if rec["id"] in seen:
            raise DataError(f"{_where(path, n, mapping.get('id') or 'id')}: duplicate id {rec['id']!r} (first at {row_kind} {seen[rec['id']]})")
        seen[rec["id"]] = n
        rec["label"] = _label_name(row.get(mapping["label"]), labels, _where(path, n, mapping["label"]))
        for field in needed[1:]:
            rec[field] = _text(row.get(mapping[field]), _where(path, n, mapping[field]))
            if not rec[field]:
                raise DataError(f"{_where(path, n, mapping[field])}: empty {field}")
        expl_cols = mapping.get("explanations")
        expls: list[str] = []
        if expl_cols:
            for col in [expl_cols] if isinstance(expl_cols, str) else expl_cols:
                value = row.get(col)
                values = value if isinstance(value, (list, tuple)) else [value]
                expls.extend(t for t in (_text(v, _where(path, n, col)) for v in values) if t)
        rec["explanations"] = expls
        if folds_from:
            rec[SOURCE_FOLD] = _fold(row.get(folds_from), spec["split"]["folds"], _where(path, n, folds_from))
        records.append(rec)
    return records, {rid: f"{row_kind} {n}" for rid, n in seen.items()}


def load_dataset(spec: dict, name: str | None = None) -> list[dict]:
    """Load a dataset from its validated config entry (``config['datasets'][name]``; see
    :func:`explainbench.config.dataset_entry`); generated ids start with ``name``."""
    return load_dataset_rows(spec, name)[0]


def load_dataset_rows(spec: dict, name: str | None = None) -> tuple[list[dict], dict[str, str]]:
    """:func:`load_dataset`, and where each record came from (id -> "line 12"), for messages."""
    fmt = spec["format"]
    labels = spec["labels"]
    if fmt == "healthfc" and len(labels) != 3:
        raise DataError(f"datasets.{name}.labels: HealthFC has three labels (0 supported, 1 not enough information, 2 refuted)")
    return _load_rows(spec["path"], spec, name or Path(spec["path"]).stem)


def label_column(spec: dict) -> str:
    """The file's column that holds a dataset's labels."""
    return _columns_for(spec["format"], spec["task"], spec["columns"], spec["path"])["label"]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (what a data file's cache key is made of, not its mtime);
    remembered in this process while the file's size and mtime stay the same."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_text(record: dict) -> str:
    """The text a single-input model sees: the text, or premise and hypothesis joined."""
    if record.get("text"):
        return record["text"]
    return f"{record['premise']} {record['hypothesis']}"
