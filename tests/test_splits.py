"""Seeded, stratified splits: identical across runs, row orders and machines."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from conftest import ESNLI_LABELS
from explainbench.data import load_records
from explainbench.splits import draw_per_class, hash_key, sample_per_class, split_records


def _ids(rows):
    return [r["id"] for r in rows]


def test_split_is_deterministic_stratified_and_order_free(esnli_path):
    records = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)
    first = split_records(records, dev=0.1, test=0.2, seed=3)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    second = split_records(shuffled, dev=0.1, test=0.2, seed=3)
    assert {k: _ids(v) for k, v in first.items()} == {k: _ids(v) for k, v in second.items()}
    ids = [set(_ids(v)) for v in first.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(len(v) for v in first.values()) == len(records)
    total = Counter(r["label"] for r in records)
    test = Counter(r["label"] for r in first["test"])
    for label in ESNLI_LABELS:  # each class contributes its share
        assert abs(test[label] / total[label] - 0.2) < 0.001
    other = split_records(records, dev=0.1, test=0.2, seed=4)
    assert _ids(other["test"]) != _ids(first["test"])


def test_split_pinned_across_machines():
    # sha256 of "seed\x1fid" orders the records: a fixed value pins the behaviour everywhere
    assert hash_key(0, "esnli-dev-0") == hash_key("0", "esnli-dev-0")
    assert hash_key(0, "esnli-dev-0")[:12] == __import__("hashlib").sha256(b"0\x1fesnli-dev-0").hexdigest()[:12]


def test_n_per_class_samples(esnli_path):
    records = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)
    a = draw_per_class(records, 8, seed=0)
    assert Counter(r["label"] for r in a) == {label: 8 for label in ESNLI_LABELS}
    assert _ids(a) == _ids(draw_per_class(list(reversed(records)), 8, seed=0))
    assert _ids(a) != _ids(draw_per_class(records, 8, seed=1))
    # a larger draw of the same seed contains the smaller one (nested learning-curve samples)
    assert set(_ids(a)) <= set(_ids(draw_per_class(records, 16, seed=0)))
    assert len(sample_per_class(records[:10], 100, seed=0)) == 10


# ----------------------------------------------------------------------------- cross-validation folds

from explainbench.config import dataset_entry  # noqa: E402
from explainbench.errors import DataError  # noqa: E402
from explainbench.files import read_examples, write_examples  # noqa: E402
from explainbench.splits import (  # noqa: E402
    fold_split, place_examples, prepare_examples, read_fold, sample_records, split_summary)


def _esnli_entry(path, **split):
    return dataset_entry(format="esnli", path=str(path), labels=ESNLI_LABELS, sample_per_class=280,
                         sampling="balanced", split={"folds": 5, "dev": 0, **split})


def test_balanced_subset_and_five_disjoint_stratified_test_folds(esnli_path):
    """e-SNLI as Dhaini et al.: 840 pairs, 280 per class; 5 test folds that cover them all."""
    examples = prepare_examples(_esnli_entry(esnli_path), "esnli")
    assert len(examples) == 840 and Counter(e["label"] for e in examples) == {lab: 280 for lab in ESNLI_LABELS}
    folds = [fold_split(examples, k) for k in range(5)]
    tests = [set(_ids(f["test"])) for f in folds]
    assert set().union(*tests) == {e["id"] for e in examples}                     # every example tested once
    assert all(not (tests[i] & tests[j]) for i in range(5) for j in range(i + 1, 5))
    for k, fold in enumerate(folds):
        assert len(fold["test"]) == 168 and len(fold["train"]) == 672 and fold["dev"] == []   # 672/168
        assert Counter(r["label"] for r in fold["test"]) == {lab: 56 for lab in ESNLI_LABELS}  # stratified
        assert not set(_ids(fold["train"])) & tests[k]
        assert "test_fold" not in fold["train"][0]  # the placement stays in examples.jsonl
    # the same seed places the same examples the same way, whatever the file order
    again = place_examples(list(reversed(examples)), _esnli_entry(esnli_path)["split"])
    assert [(e["id"], e["test_fold"]) for e in again] == [(e["id"], e["test_fold"]) for e in examples]


def test_fixed_demonstrations_are_reserved_out_of_every_test_fold(esnli_path):
    examples = prepare_examples(_esnli_entry(esnli_path), "esnli", n_demonstrations=5)
    demos = sorted((e for e in examples if e["demonstration"] is not None), key=lambda e: e["demonstration"])
    assert [e["demonstration"] for e in demos] == [0, 1, 2, 3, 4] and all(e["explanations"] for e in demos)
    assert Counter(e["label"] for e in demos[:3]) == {lab: 1 for lab in ESNLI_LABELS}   # labels take turns
    for k in range(5):
        fold = fold_split(examples, k)
        assert set(_ids(demos)) <= set(_ids(fold["train"]))        # in the train split of every fold
        assert not set(_ids(demos)) & set(_ids(fold["test"]))
        assert len(fold["test"]) == 167                            # (840 - 5) / 5
    summary = split_summary(examples, range(5))
    assert summary["demonstrations"] == _ids(demos) and summary["folds"]["0"]["test"]["n"] == 167


def test_dev_splits_and_the_single_split_fold0(esnli_path):
    records = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)[:600]
    placed = place_examples(records, {"seed": 3, "folds": 4, "dev": 0.1, "test": 0.2})
    for k in range(4):
        fold = fold_split(placed, k)
        assert abs(len(fold["dev"]) - 60) <= 3 and not set(_ids(fold["dev"])) & set(_ids(fold["test"]))
    assert _ids(fold_split(placed, 0)["dev"]) != _ids(fold_split(placed, 1)["dev"])  # a draw per fold
    # without folds, fold 0 is exactly the train/dev/test split the pipeline always made
    single = place_examples(records, {"seed": 3, "folds": None, "dev": 0.1, "test": 0.2})
    old = split_records(records, dev=0.1, test=0.2, seed=3)
    assert {k: _ids(v) for k, v in fold_split(single, 0).items()} == {k: _ids(v) for k, v in old.items()}
    none = place_examples(records, {"seed": 3, "folds": None, "dev": 0.0, "test": 0.2})
    assert fold_split(none, 0)["dev"] == []


def test_balanced_sampling_of_a_too_small_class_is_an_error(esnli_path):
    records = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)
    few = [r for r in records if r["label"] != "neutral"] + [r for r in records if r["label"] == "neutral"][:10]
    spec = dataset_entry(format="esnli", path=str(esnli_path), labels=ESNLI_LABELS, sample_per_class=20,
                         sampling="balanced")
    with pytest.raises(DataError, match=r"datasets.esnli: balanced sampling of 20 per class.*'neutral': 10"):
        sample_records(few, spec, "esnli")
    capped = dict(spec, sampling="capped")
    assert Counter(r["label"] for r in sample_records(few, capped, "esnli"))["neutral"] == 10


def test_examples_file_round_trip_and_checked_reading(tmp_path, esnli_path):
    examples = prepare_examples(_esnli_entry(esnli_path, seed=1), "esnli", n_demonstrations=2)
    path = tmp_path / "examples.jsonl"
    write_examples(examples, path)
    assert read_examples(path) == examples
    assert _ids(read_fold(path, 3)["test"]) == _ids(fold_split(examples, 3)["test"])
    with pytest.raises(DataError, match=r"examples.jsonl: no example is in the test split of fold 5"):
        read_fold(path, 5)
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace('"dev_folds": []', '"dev_folds": "0"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"examples.jsonl, row 7, field 'dev_folds'"):
        read_examples(path)


def test_healthfc_all_claims_in_five_folds(healthfc_path):
    spec = dataset_entry(format="healthfc", path=str(healthfc_path), labels=["supported", "not enough information",
                                                                               "refuted"], split={"folds": 5, "dev": 0})
    examples = prepare_examples(spec, "healthfc", n_demonstrations=2)
    assert len(examples) == 750
    sizes = sorted(len(fold_split(examples, k)["test"]) for k in range(5))
    assert sizes == [149, 149, 150, 150, 150]           # 748 claims in test folds, 2 reserved demonstrations
    assert sum(1 for e in examples if not e["explanations"]) == 9   # the nine claims without a reference
