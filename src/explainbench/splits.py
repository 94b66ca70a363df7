"""Seeded, stratified splits and n-per-class samples, identical across runs and machines.

Order inside each class is decided by a hash of (seed, id), not by a random generator's
state or by the file's row order: the same seed and ids give the same split anywhere.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict

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


def split_records(records: list[dict], dev: float, test: float, seed: int) -> dict[str, list[dict]]:
    """Stratified train/dev/test split: each class contributes its share to each split."""
    out: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for group in by_class(records, seed).values():
        n = len(group)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_dev = max(1, round(n * dev)) if n >= 3 else 0
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


def prepare_dataset(spec: dict, name: str) -> dict[str, list[dict]]:
    """Load a configured dataset, sample it if asked, and split it (train/dev/test)."""
    from .data import load_dataset

    records = load_dataset(spec, name)
    split = spec["split"]
    if spec["sample_per_class"]:
        records = sample_per_class(records, spec["sample_per_class"], split["seed"])
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


def run(job) -> dict:
    """Rule ``prepare_data``: load, check and split one dataset; write the splits and a summary."""
    from .io import write_json, write_jsonl

    splits = prepare_dataset(job.dataset_spec, job.dataset)
    for name, rows in splits.items():
        write_jsonl(rows, job.output[name])
    summary = split_summary(splits)
    write_json(summary, job.output["summary"])
    log.info("%s: %s", job.dataset, summary)
    return summary
