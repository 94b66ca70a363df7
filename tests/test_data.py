"""Loaders on the real e-SNLI, HealthFC and SST-2 files, and on broken copies of them."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import ESNLI_LABELS, HEALTHFC_LABELS, SST2_LABELS
from explainbench.data import DataError, load_dataset, load_records


def test_esnli_dev_counts(esnli_path):
    records = load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)
    assert len(records) == 9842
    assert Counter(r["label"] for r in records) == {"entailment": 3329, "neutral": 3235, "contradiction": 3278}
    assert all(len(r["explanations"]) == 3 for r in records)
    assert records[0]["id"] == "esnli-dev-0" and records[0]["premise"] and records[0]["hypothesis"]


def test_healthfc_counts_and_pair(healthfc_path):
    records = load_records(healthfc_path, format="healthfc", labels=HEALTHFC_LABELS, id_prefix="healthfc")
    assert len(records) == 750
    counts = Counter(r["label"] for r in records)
    assert sum(counts.values()) == 750 and set(counts) == set(HEALTHFC_LABELS)
    first = records[0]
    # the pair is (evidence sentences, claim), the reference is the expert explanation; the BOM is gone
    assert first["hypothesis"].startswith("Can masks reduce corona infections")
    assert first["premise"].startswith("Studies show slow spread")
    assert first["explanations"][0].startswith("International studies suggest")
    assert first["id"] == "healthfc-1"
    # multi-line quoted fields are joined, not split into rows
    assert all("\n" not in r["premise"] for r in records)


def test_sst2_with_column_mapping(sst2_dir):
    dev = load_records(sst2_dir / "dev.tsv", format="tsv", task="classification", labels=SST2_LABELS,
                       columns={"text": "content"})
    assert len(dev) == 872
    assert Counter(r["label"] for r in dev) == {"negative": 428, "positive": 444}
    train = load_records(sst2_dir / "train.tsv", format="tsv", task="classification", labels=SST2_LABELS,
                         columns={"text": "sentence"})
    assert len(train) == 67349
    assert not any(r["text"].endswith("\r") for r in train[:100])  # CRLF line ends handled


def test_parquet_and_csv_through_mapping(tmp_path, esnli_path):
    import pandas as pd

    rows = [json.loads(line) for line in esnli_path.read_text().splitlines()[:30]]
    frame = pd.DataFrame({"pid": [r["id"] for r in rows], "p": [r["premise"] for r in rows],
                          "h": [r["hypothesis"] for r in rows], "gold": [ESNLI_LABELS.index(r["label"]) for r in rows],
                          "e1": [r["explanations"][0] for r in rows]})
    frame.to_parquet(tmp_path / "x.parquet")
    frame.to_csv(tmp_path / "x.csv", index=False)
    cols = {"id": "pid", "premise": "p", "hypothesis": "h", "label": "gold", "explanations": "e1"}
    for fmt, name in (("parquet", "x.parquet"), ("csv", "x.csv")):
        records = load_records(tmp_path / name, format=fmt, labels=ESNLI_LABELS, columns=cols)
        assert [r["label"] for r in records] == [r["label"] for r in rows]  # integer labels index the list
        assert records[3]["explanations"] == [" ".join(rows[3]["explanations"][0].split())]  # whitespace normalised


# ------------------------------------------------------------------- broken copies

def _broken_esnli(tmp_path, esnli_path, edit, n=20):
    lines = esnli_path.read_text().splitlines()[:n]
    rows = [json.loads(line) for line in lines]
    edit(rows)
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda rows: rows[4].update(label="maybe"), r"broken.jsonl, row 5, field 'label': unknown label 'maybe'"),
    (lambda rows: rows[2].update(hypothesis="   "), r"broken.jsonl, row 3, field 'hypothesis': empty hypothesis"),
    (lambda rows: rows[7].update(id=rows[1]["id"]), r"broken.jsonl, row 8, field 'id': duplicate id 'esnli-dev-1' \(first at line 2\)"),
    (lambda rows: rows[6].pop("label"), r"broken.jsonl, row 7, field 'label': label is missing"),
])
def test_broken_esnli_names_file_row_field(tmp_path, esnli_path, edit, expected):
    path = _broken_esnli(tmp_path, esnli_path, edit)
    with pytest.raises(DataError, match=expected):
        load_records(path, format="esnli", labels=ESNLI_LABELS)


def test_missing_file_and_missing_column(tmp_path, healthfc_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_records(tmp_path / "nope.jsonl", format="esnli", labels=ESNLI_LABELS)
    text = healthfc_path.read_text(encoding="utf-8-sig").replace("en_claim,", "claim_en,", 1)
    broken = tmp_path / "healthfc.csv"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"healthfc.csv: column 'en_claim' \(field 'hypothesis'\) not found"):
        load_records(broken, format="healthfc", labels=HEALTHFC_LABELS)


def test_healthfc_bad_label_row(tmp_path, healthfc_path):
    import pandas as pd

    frame = pd.read_csv(healthfc_path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    frame.loc[9, "label"] = "7"
    path = tmp_path / "hfc.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"hfc.csv, row 10, field 'label': unknown label '7'"):
        load_records(path, format="healthfc", labels=HEALTHFC_LABELS)


def test_sst2_wrong_column_lists_available(sst2_dir):
    with pytest.raises(DataError, match=r"column 'sentence' \(field 'text'\) not found; columns: \['content', 'label'\]"):
        load_records(sst2_dir / "dev.tsv", format="tsv", task="classification", labels=SST2_LABELS,
                     columns={"text": "sentence"})


def test_load_dataset_from_config_entry(esnli_path):
    from explainbench.config import dataset_entry

    spec = dataset_entry(format="esnli", path=str(esnli_path), labels=ESNLI_LABELS)
    records = load_dataset(spec, "esnli")
    assert len(records) == 9842 and records == load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)


def test_a_hub_dataset_is_read_with_its_subset_or_named_when_it_cannot_be(monkeypatch):
    """datasets.<name>.hub_config reaches datasets.load_dataset as the subset (configuration name)."""
    import datasets

    from explainbench.config import dataset_entry

    calls = []

    def fake_load_dataset(path, name=None, split=None):  # the hub is offline here: record the call
        calls.append((path, name, split))
        return datasets.Dataset.from_list([{"sentence": "profits rose", "label": 2},
                                           {"sentence": "sales fell", "label": 0}])

    spec = dataset_entry(format="hub", path="takala/financial_phrasebank", hub_config="sentences_allagree",
                         hub_split="train", task="classification", labels=["negative", "neutral", "positive"],
                         columns={"text": "sentence", "label": "label"})
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records = load_dataset(spec, "fpb")
    assert calls == [("takala/financial_phrasebank", "sentences_allagree", "train")]
    assert [(r["text"], r["label"]) for r in records] == [("profits rose", "positive"), ("sales fell", "negative")]
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"hub dataset 'nobody/no-such-set' \(split 'train', subset 'x'\): cannot load"):
        load_dataset(dataset_entry(**{**spec, "path": "nobody/no-such-set", "hub_config": "x"}), "fpb")
