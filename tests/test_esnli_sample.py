"""The e-SNLI sample the default config runs on: rebuilt byte for byte by its script from the real
e-SNLI file, stratified, with its licence notice beside it."""
from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter

import yaml

from conftest import ESNLI_LABELS, ROOT
from explainbench.config import validate_config
from explainbench.data import load_dataset, load_records

SAMPLE = ROOT / "resources" / "esnli" / "esnli_sample.jsonl"


def _tool():
    spec = importlib.util.spec_from_file_location("build_esnli_sample", ROOT / "tools" / "build_esnli_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_rebuilds_the_shipped_sample_byte_for_byte(esnli_path, tmp_path):
    out = tmp_path / "sample.jsonl"
    _tool().main(["--source", str(esnli_path), "--out", str(out)])
    assert out.read_bytes() == SAMPLE.read_bytes()
    # another seed picks other pairs
    _tool().main(["--source", str(esnli_path), "--out", str(tmp_path / "other.jsonl"), "--seed", "1"])
    assert (tmp_path / "other.jsonl").read_bytes() != SAMPLE.read_bytes()


def test_the_sample_is_stratified_real_e_snli_with_its_licence(esnli_path):
    sample = load_records(SAMPLE, format="esnli", labels=ESNLI_LABELS)
    assert Counter(r["label"] for r in sample) == {label: 100 for label in ESNLI_LABELS}
    assert all(len(r["explanations"]) == 3 for r in sample)
    source = {r["id"]: r for r in load_records(esnli_path, format="esnli", labels=ESNLI_LABELS)}
    assert all(source[r["id"]] == r for r in sample)  # pairs as published, nothing edited
    licence = (ROOT / "resources" / "esnli" / "LICENSE").read_text()
    assert "Oana-Maria Camburu" in licence and "Permission is hereby granted, free of charge" in licence


def test_the_script_reads_the_published_csv_layout(esnli_path, tmp_path):
    """esnli_dev.csv as published: pairID, gold_label, Sentence1, Sentence2, Explanation_1..3."""
    rows = [json.loads(line) for line in esnli_path.read_text().splitlines()[:30]]
    published = tmp_path / "esnli_dev.csv"
    with published.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["pairID", "gold_label", "Sentence1", "Sentence2", "Explanation_1", "Explanation_2",
                         "Explanation_3"])
        for n, r in enumerate(rows):
            writer.writerow([f"{n}r{n}", r["label"], r["premise"], r["hypothesis"], *r["explanations"]])
    sample = _tool().build_sample(published, per_class=3, seed=0)
    assert Counter(r["label"] for r in sample) == {label: 3 for label in ESNLI_LABELS}
    by_id = {f"{n}r{n}": r for n, r in enumerate(rows)}
    spaced = lambda text: " ".join(text.split())  # noqa: E731 - the loaders normalise whitespace
    for rec in sample:
        source = by_id[rec["id"]]
        assert rec["premise"] == spaced(source["premise"]) and rec["label"] == source["label"]
        assert rec["explanations"] == [spaced(e) for e in source["explanations"]]


def test_the_default_config_runs_both_studies_on_the_sample():
    config = validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    studies = {stage: config[stage]["datasets"] for stage in ("explain", "finetune", "zeroshot", "plr")}
    names = {d for datasets in studies.values() for d in datasets}
    assert names and all(studies.values())
    for name in names:
        spec = config["datasets"][name]
        assert (spec["format"], spec["path"]) == ("esnli", "resources/esnli/esnli_sample.jsonl")
        assert len(load_dataset({**spec, "path": str(ROOT / spec["path"])}, name)) == 300
    assert not any("demo" in spec["path"] for spec in config["datasets"].values())  # template data: tests only
