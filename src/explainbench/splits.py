"""Seeded, stratified splits and n-per-class samples, identical across runs and machines.

Order inside each class is decided by a hash of (seed, id), not by a random generator's
state or by the file's row order: the same seed and ids give the same split anywhere.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)


def hash_key(seed: int | str, item_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{item_id}".encode()).hexdigest()


def by_class(records: list[dict], seed: int | str) -> dict[str, list[dict]]:
    """Records grouped by label, each group in its seeded hash order; labels sorted."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        groups[rec["label"]].append(rec)
    return {label: sorted(groups[label], key=lambda r: hash_key(seed, r["id"])) for label in sorted(groups)}


def sample_per_class(records: list[dict], n: int, seed: int | str) -> list[dict]:
    """At most ``n`` records of each class, chosen by the seed; returned in id-hash order."""
    picked = [r for group in by_class(records, seed).values() for r in group[:n]]
    return sorted(picked, key=lambda r: hash_key(seed, r["id"]))


def split_sizes(n: int, dev: float, test: float) -> tuple[int, int, int]:
    """(train, dev, test) sizes of a class of ``n``: each of dev and test gets its share and at
    least one; a class of fewer than 3 gets no dev or test example (see :func:`check_design`)."""
    n_test = max(1, round(n * test)) if n >= 3 else 0
    n_dev = max(1, round(n * dev)) if n >= 3 else 0
    return n - n_test - n_dev, n_dev, n_test


def split_records(records: list[dict], dev: float, test: float, seed: int) -> dict[str, list[dict]]:
    """Stratified train/dev/test split: each class contributes its share to each split."""
    out: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for group in by_class(records, seed).values():
        _, n_dev, n_test = split_sizes(len(group), dev, test)
        out["test"].extend(group[:n_test])
        out["dev"].extend(group[n_test:n_test + n_dev])
        out["train"].extend(group[n_test + n_dev:])
    return {name: sorted(rows, key=lambda r: r["id"]) for name, rows in out.items()}


def draw_per_class(records: list[dict], n: int, seed: int | str) -> list[dict]:
    """Exactly ``n`` per class (for learning curves); raises if a class has fewer."""
    groups = by_class(records, seed)
    short = {label: len(g) for label, g in groups.items() if len(g) < n}
    if short:
        raise ValueError(f"cannot draw {n} per class: classes with fewer examples: {short}")
    return sample_per_class(records, n, seed)


def check_design(records: list[dict], spec: dict, name: str, rows: dict[str, str]) -> None:
    """Data the study design cannot use is an error naming the file, the rows and the field: a
    configured label that never occurs, or a class too small for every split to get one of it
    (it would vanish from dev and test, or from train). ``rows`` maps ids to where they are."""
    from .data import label_column

    path, field = spec["path"], label_column(spec)
    where = f"{path}, field {field!r}"
    counts: dict[str, list[str]] = {}
    for rec in records:
        counts.setdefault(rec["label"], []).append(rec["id"])
    dev, test = spec["split"]["dev"], spec["split"]["test"]
    need = next((n for n in range(3, 10_000) if min(split_sizes(n, dev, test)) >= 1), 10_000)
    if len(records) < need:
        at = ", ".join(rows.get(r["id"], r["id"]) for r in records[:5])
        raise DataError(f"{where}: only {len(records)} row(s) ({at}); a stratified split with dev {dev} and test "
                        f"{test} (datasets.{name}.split) needs at least {need} rows per class")
    never = [label for label in spec["labels"] if label not in counts]
    if never:
        raise DataError(f"{where}: label(s) {never} of datasets.{name}.labels never occur in the file's "
                        f"{len(records)} row(s); found {sorted(counts)}. Fix the data or the labels list")
    for label, ids in sorted(counts.items()):
        sizes = dict(zip(("train", "dev", "test"), split_sizes(len(ids), dev, test)))
        if min(sizes.values()) < 1:
            at = ", ".join(rows.get(i, i) for i in ids[:5])
            raise DataError(f"{where}: class {label!r} has {len(ids)} row(s) ({at}); with dev {dev} and test {test} "
                            f"(datasets.{name}.split) that leaves it {sizes}: a stratified split needs one of each "
                            f"class in train, dev and test (at least {need} rows per class)")


def prepare_dataset(spec: dict, name: str) -> dict[str, list[dict]]:
    """Load a configured dataset, check it against the design (:func:`check_design`), sample it
    if asked, and split it (train/dev/test)."""
    from .data import load_dataset_rows

    records, rows = load_dataset_rows(spec, name)
    split = spec["split"]
    if spec["sample_per_class"]:
        records = sample_per_class(records, spec["sample_per_class"], split["seed"])
    check_design(records, spec, name, rows)
    return split_records(records, split["dev"], split["test"], split["seed"])


def split_summary(splits: dict[str, list[dict]]) -> dict:
    """Counts per split and label, for the log and the report."""
    out = {}
    for name, rows in splits.items():
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        out[name] = {"n": len(rows), "labels": dict(sorted(counts.items()))}
    return out


def data_source(spec: dict) -> dict:
    """What a dataset's splits are made from: its config entry (result keys) and, for a local
    file, the SHA-256 of its bytes."""
    from .config import result_keys
    from .data import file_sha256, is_hub

    path = Path(spec["path"])
    local = not is_hub(path, spec["format"]) and path.is_file()
    return {"entry": result_keys(spec, "datasets.*"), "sha256": file_sha256(path) if local else None}


def check_changed_data(spec: dict, name: str, summary_path: str | Path) -> str | None:
    """The SHA-256 of a dataset's file (rule prepare_data's cache key: new content re-runs the
    splits, an identical copy with a new mtime does not), or None for a hub dataset or a file
    not there yet.

    When splits exist (``summary_path``) but were made from other bytes or another config
    entry, the data is loaded and checked here, while Snakemake builds its DAG: bad data stops
    the run before Snakemake deletes the good splits to run prepare_data again."""
    import json

    source = data_source(spec)
    summary_path = Path(summary_path)
    if summary_path.exists():
        try:
            before = json.loads(summary_path.read_text()).get("source")
        except (OSError, ValueError):
            before = None
        if before != source:
            log.info("datasets.%s changed since %s was written: checking it before its splits are replaced",
                     name, summary_path)
            prepare_dataset(spec, name)
    return source["sha256"]


def run(job) -> dict:
    """Rule ``prepare_data``: load, check and split one dataset; write the splits and a summary
    (counts per split and label, and the :func:`data_source` they come from)."""
    from .io import write_json, write_jsonl

    splits = prepare_dataset(job.dataset_spec, job.dataset)
    for name, rows in splits.items():
        write_jsonl(rows, job.output[name])
    summary = split_summary(splits)
    log.info("%s: %s", job.dataset, summary)
    summary["source"] = data_source(job.dataset_spec)
    write_json(summary, job.output["summary"])
    return summary
