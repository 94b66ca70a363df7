"""Seeded, stratified splits, cross-validation folds and n-per-class samples, identical across
runs and machines.

Order inside each class is decided by a hash of (seed, id), not by a random generator's
state or by the file's row order: the same seed and ids give the same split anywhere.

The data stage writes every example of a study once (``results/data/<dataset>/examples.jsonl``),
each with where it sits: ``test_fold`` (the fold whose test split holds it, or null),
``dev_folds`` (the folds whose dev split holds it) and ``demonstration`` (its rank in the
dataset's fixed few-shot set, or null). :func:`fold_split` turns that into one fold's
train/dev/test:

- ``split.folds: null`` (default): one fold, ``0``: a stratified train/dev/test split with
  the ``split.dev`` and ``split.test`` shares (what the pipeline has always done).
- ``split.folds: K``: ``K`` disjoint stratified test folds that cover every example (the
  demonstrations excepted); each fold's dev split is a stratified ``split.dev`` share of the
  other examples, and its train split is the rest.

Fixed demonstrations (``explain.demonstrations: fixed``) are reserved before any split: they
are in no test fold and in no dev split, so they sit in the train split of every fold.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

from .errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
PLACEMENT_FIELDS = ("test_fold", "dev_folds", "demonstration")


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


def draw_per_class(records: list[dict], n: int, seed: int | str) -> list[dict]:
    """Exactly ``n`` per class (for learning curves and balanced subsets); raises if a class has fewer."""
    groups = by_class(records, seed)
    short = {label: len(g) for label, g in groups.items() if len(g) < n}
    if short:
        raise ValueError(f"cannot draw {n} per class: classes with fewer examples: {short}")
    return sample_per_class(records, n, seed)


def _count(n: int, share: float) -> int:
    """Examples of a class of ``n`` that a split with ``share`` gets: at least one (if the class
    has three), none when the share is 0."""
    if share <= 0 or n < 3:
        return 0
    return max(1, round(n * share))


def split_sizes(n: int, split: dict) -> tuple[int, int, int]:
    """(train, dev, test) sizes of a class of ``n`` under a dataset's ``split`` section; with
    ``folds: K``, those of the fold that gives the class the fewest test examples. A class of
    fewer than 3 gets no dev or test example without folds (see :func:`check_design`)."""
    n_dev = _count(n, split["dev"])
    if split.get("folds"):
        k = split["folds"]
        return n - -(-n // k) - n_dev, n_dev, n // k
    n_test = _count(n, split["test"])
    return n - n_test - n_dev, n_dev, n_test


def split_records(records: list[dict], dev: float, test: float, seed: int) -> dict[str, list[dict]]:
    """Stratified train/dev/test split: each class contributes its share to each split."""
    out: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for group in by_class(records, seed).values():
        n = len(group)
        n_test, n_dev = _count(n, test), _count(n, dev)
        out["test"].extend(group[:n_test])
        out["dev"].extend(group[n_test:n_test + n_dev])
        out["train"].extend(group[n_test + n_dev:])
    return {name: sorted(rows, key=lambda r: r["id"]) for name, rows in out.items()}


def assign_test_folds(records: list[dict], folds: int, seed: int) -> dict[str, int]:
    """``id -> fold`` for ``folds`` disjoint stratified test folds covering every record.

    Classes (sorted) are dealt out in their seeded hash order, one record per fold in turn,
    the turn carried over from one class to the next: each class's count differs by at most
    one between folds, and so does each fold's size.
    """
    out, turn = {}, 0
    for group in by_class(records, seed).values():
        for rec in group:
            out[rec["id"]] = turn % folds
            turn += 1
    return out


def official_test_folds(records: list[dict], folds: int, where: str = "dataset") -> dict[str, int]:
    """``id -> fold`` as the records' file gives it (``split.folds_from``, read by the loader
    into :data:`explainbench.data.SOURCE_FOLD`); a fold that holds no record is an error."""
    from .data import SOURCE_FOLD

    out = {r["id"]: r[SOURCE_FOLD] for r in records}
    empty = sorted(set(range(folds)) - set(out.values()))
    if empty:
        raise DataError(f"{where}: split.folds_from gives no example to fold(s) {empty} of {folds}")
    return out


def reserve_demonstrations(records: list[dict], k: int, seed: int, where: str = "dataset") -> list[dict]:
    """The dataset's fixed few-shot demonstrations: ``k`` records with a human explanation,
    label-balanced for every prefix (labels take turns, in a seeded order), each label's in
    seeded hash order. ``k`` shots use the first ``k`` of them."""
    if k <= 0:
        return []
    explained = [r for r in records if r.get("explanations")]
    groups = by_class(explained, f"{seed}:demonstrations")
    labels = sorted({r["label"] for r in records}, key=lambda lab: hash_key(f"{seed}:demonstration-labels", lab))
    picked: list[dict] = []
    for turn in range(k):
        label = labels[turn % len(labels)]
        group = groups.get(label, [])
        index = turn // len(labels)
        if index >= len(group):
            raise DataError(f"{where}: cannot reserve {k} fixed demonstrations: label {label!r} has "
                            f"{len(group)} example(s) with a human explanation")
        picked.append(group[index])
    return picked


def place_examples(records: list[dict], split: dict, n_demonstrations: int = 0,
                   where: str = "dataset") -> list[dict]:
    """Every record with its placement (:data:`PLACEMENT_FIELDS`), sorted by id.

    ``split`` is a dataset entry's ``split`` section (``dev``, ``test``, ``seed``, ``folds``);
    ``n_demonstrations`` records are reserved as fixed demonstrations first.
    """
    seed, folds = split["seed"], split["folds"]
    demos = reserve_demonstrations(records, n_demonstrations, seed, where)
    rank = {r["id"]: i for i, r in enumerate(demos)}
    rest = [r for r in records if r["id"] not in rank]
    test_fold: dict[str, int] = {}
    dev_folds: dict[str, list[int]] = defaultdict(list)
    if not folds:
        parts = split_records(rest, split["dev"], split["test"], seed)
        test_fold = {r["id"]: 0 for r in parts["test"]}
        for r in parts["dev"]:
            dev_folds[r["id"]].append(0)
    else:
        test_fold = (official_test_folds(rest, folds, where) if split.get("folds_from")
                     else assign_test_folds(rest, folds, seed))
        sizes = Counter(r["label"] for r in rest)
        for fold in range(folds):
            others = [r for r in rest if test_fold[r["id"]] != fold]
            for label, group in by_class(others, f"{seed}:dev{fold}").items():
                for r in group[:_count(sizes[label], split["dev"])]:
                    dev_folds[r["id"]].append(fold)
    out = [dict(r, test_fold=test_fold.get(r["id"]), dev_folds=dev_folds.get(r["id"], []),
                demonstration=rank.get(r["id"])) for r in records]
    return sorted(out, key=lambda r: r["id"])


def fold_split(examples: Sequence[dict], fold: int) -> dict[str, list[dict]]:
    """One fold's train/dev/test records (placement fields dropped), each in the examples' order
    (by id, as the data stage writes them)."""
    out: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for ex in examples:
        name = "test" if ex["test_fold"] == fold else "dev" if fold in ex["dev_folds"] else "train"
        out[name].append({k: v for k, v in ex.items() if k not in PLACEMENT_FIELDS})
    return out


def read_fold(path: str | Path, fold: int | str) -> dict[str, list[dict]]:
    """One fold's train/dev/test records from an ``examples.jsonl``; a fold with no test
    example is an error (it does not exist in this file)."""
    from .files import read_examples

    parts = fold_split(read_examples(path), int(fold))
    if not parts["test"]:
        raise DataError(f"{path}: no example is in the test split of fold {fold} (field 'test_fold')")
    return parts


def read_train_test(path: str | Path, fold: int = 0) -> dict[str, list[dict]]:
    """A fold's train and test records (Study 2 reads fold 0: it is not cross-validated)."""
    parts = read_fold(path, fold)
    return {"train": parts["train"], "test": parts["test"]}


def fold_names(spec: dict) -> list[int]:
    """The folds of a dataset entry: ``0 .. K-1``, or ``[0]`` without cross-validation."""
    return list(range(spec["split"]["folds"] or 1))


def sample_records(records: list[dict], spec: dict, name: str) -> list[dict]:
    """The study's subset: ``sample_per_class`` per class (seeded), ``capped`` (at most) or
    ``balanced`` (exactly; a smaller class is an error); everything when it is null."""
    n = spec["sample_per_class"]
    if not n:
        return records
    if spec["sampling"] == "balanced":
        counts = Counter(r["label"] for r in records)
        short = {label: counts.get(label, 0) for label in spec["labels"] if counts.get(label, 0) < n}
        if short:
            raise DataError(f"datasets.{name}: balanced sampling of {n} per class, but these labels have fewer "
                            f"examples: {short}")
    return sample_per_class(records, n, spec["split"]["seed"])


def _fits(sizes: tuple[int, int, int], split: dict) -> bool:
    train, dev, test = sizes
    return train >= 1 and test >= 1 and (dev >= 1 or split["dev"] <= 0)


def check_design(records: list[dict], spec: dict, name: str, rows: dict[str, str]) -> None:
    """Data the study design cannot use is an error naming the file, the rows and the field: a
    configured label that never occurs, or a class too small for every split to get one of it
    (it would vanish from dev and test, or from train; dev may be empty when ``split.dev`` is 0).
    ``rows`` maps ids to where they are."""
    from .data import label_column

    path, field = spec["path"], label_column(spec)
    where = f"{path}, field {field!r}"
    counts: dict[str, list[str]] = {}
    for rec in records:
        counts.setdefault(rec["label"], []).append(rec["id"])
    split = spec["split"]
    design = (f"folds {split['folds']} and dev {split['dev']}" if split.get("folds")
              else f"dev {split['dev']} and test {split['test']}")
    need = next((n for n in range(1, 10_000) if _fits(split_sizes(n, split), split)), 10_000)
    if len(records) < need:
        at = ", ".join(rows.get(r["id"], r["id"]) for r in records[:5])
        raise DataError(f"{where}: only {len(records)} row(s) ({at}); a stratified split with {design} "
                        f"(datasets.{name}.split) needs at least {need} rows per class")
    never = [label for label in spec["labels"] if label not in counts]
    if never:
        raise DataError(f"{where}: label(s) {never} of datasets.{name}.labels never occur in the file's "
                        f"{len(records)} row(s); found {sorted(counts)}. Fix the data or the labels list")
    for label, ids in sorted(counts.items()):
        sizes = dict(zip(("train", "dev", "test"), split_sizes(len(ids), split)))
        if not _fits(tuple(sizes.values()), split):
            at = ", ".join(rows.get(i, i) for i in ids[:5])
            each = "every fold's train, dev and test" if split.get("folds") else "train, dev and test"
            raise DataError(f"{where}: class {label!r} has {len(ids)} row(s) ({at}); with {design} "
                            f"(datasets.{name}.split) that leaves it {sizes}: a stratified split needs one of each "
                            f"class in {each} (at least {need} rows per class)")


def prepare_examples(spec: dict, name: str, n_demonstrations: int = 0) -> list[dict]:
    """Load a configured dataset, sample it if asked, check it against the design
    (:func:`check_design`), reserve its fixed demonstrations and place every example in its
    folds (:func:`place_examples`)."""
    from .data import load_dataset_rows

    records, rows = load_dataset_rows(spec, name)
    records = sample_records(records, spec, name)
    check_design(records, spec, name, rows)
    return place_examples(records, spec["split"], n_demonstrations, f"datasets.{name}")


def prepare_dataset(spec: dict, name: str, fold: int = 0) -> dict[str, list[dict]]:
    """Load a configured dataset, sample it if asked, and split it: ``fold``'s train/dev/test."""
    return fold_split(prepare_examples(spec, name), fold)


def split_summary(examples: Sequence[dict], folds: Sequence[int]) -> dict:
    """Counts per fold, split and label (and of the fixed demonstrations), for the log and the report."""

    def counts(rows):
        return {"n": len(rows), "labels": dict(sorted(Counter(r["label"] for r in rows).items()))}

    out = {"n": len(examples), "labels": counts(examples)["labels"],
           "demonstrations": [ex["id"] for ex in sorted((e for e in examples if e["demonstration"] is not None),
                                                        key=lambda e: e["demonstration"])],
           "folds": {}}
    for fold in folds:
        out["folds"][str(fold)] = {name: counts(rows) for name, rows in fold_split(examples, fold).items()}
    if len(folds) == 1:  # the single split, as before cross-validation
        out.update(out["folds"][str(folds[0])])
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
    """Rule ``prepare_data``: load, check, sample and place one dataset; write every example with
    its placement, the sampled ids beside them, and a summary."""
    from .files import write_examples, write_sample_ids
    from .io import write_json
    from .workflow import demonstration_count

    n_demos = demonstration_count(job.config, job.dataset)
    examples = prepare_examples(job.dataset_spec, job.dataset, n_demos)
    write_examples(examples, job.output["examples"])
    write_sample_ids(examples, job.output["sample"])
    summary = split_summary(examples, fold_names(job.dataset_spec))
    summary["source"] = data_source(job.dataset_spec)
    write_json(summary, job.output["summary"])
    log.info("%s: %d examples, %d fixed demonstration(s); %s", job.dataset, len(examples), n_demos,
             {fold: {k: v["n"] for k, v in parts.items()} for fold, parts in summary["folds"].items()})
    return summary
