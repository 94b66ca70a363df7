"""Report tables and plots (issue 6).

Unit tests write small per-run files in the contract format (docs: /tmp/contracts.md, the
"File contracts between stages"), computing every expected number independently of the code
under test. The Snakemake tests run the real report rules; the slow end-to-end test runs the
real default pipeline, renders `snakemake --report` and checks every table and plot.
"""
from __future__ import annotations

import csv
import json
import math
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TRIGGERS
from explainbench.config import load_config, validate_config
from explainbench.errors import DataError
from explainbench.provenance import config_hash
from explainbench.files import PHRASE_COLUMNS, STABILITY_COLUMNS
from explainbench.report import classification, learning_curves, plots, quality, tasks
from explainbench.report.classification import classification_table
from explainbench.report.learning_curves import plr_table, reach_column, top_phrases, zeroshot_column
from explainbench.report.plots import plot_learning_curves
from explainbench.report.quality import quality_table
from explainbench.report.render import read_table
from explainbench.stats import classification_scores, mean_ci
from explainbench.workflow import Job, fold_list, rule_settings, shots_for, stage_conditions
from support.ops import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
METRICS = ["bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1", "geval"]


# ----------------------------------------------------------------------------- contract-format writers

def write_csv_rows(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_quality_run(root: Path, dataset: str, explainer: str, shots: int, seed: int, n: int = 12,
                      metrics=METRICS, with_mauve: bool = True, fold: int = 0) -> Path:
    """per_example.csv with random scores, and corpus.csv = their means with bootstrap intervals."""
    rng = np.random.default_rng(hash((dataset, explainer, shots, seed, fold)) % 2**32)
    run = root / "results/quality" / dataset / f"fold{fold}" / explainer / f"{shots}shot" / f"seed{seed}"
    ids = [f"{dataset}-{i}" for i in range(n)]
    scores = {m: rng.uniform(1, 5, n) if m == "geval" else rng.uniform(0, 1, n) for m in metrics}
    write_csv_rows(run / "per_example.csv", ["id"] + list(metrics),
                   [[i] + [scores[m][k] for m in metrics] for k, i in enumerate(ids)])
    rows = []
    for m in metrics:
        ci = mean_ci(scores[m], bootstrap=50, seed=0)
        rows.append([dataset, fold, explainer, shots, seed, m, ci["mean"], ci["ci_low"], ci["ci_high"], n])
    if with_mauve:  # a corpus-level metric with no per-example column
        rows.append([dataset, fold, explainer, shots, seed, "mauve", rng.uniform(0, 1), "", "", n])
    return write_csv_rows(run / "corpus.csv", ["dataset", "fold", "explainer", "shots", "seed", "metric", "value",
                                               "ci_low", "ci_high", "n"], rows)


def write_classification_run(root: Path, method: str, dataset: str, classifier: str, condition: str,
                             seed, gold: list[str], pred: list, labels: list[str], model_path: str,
                             shuffle: int | None = None, fold: int = 0) -> Path:
    """predictions.csv + metrics.json exactly as the contract says (scores by stats.classification_scores);
    fold k's test items are its own ids."""
    run = root / "results" / method / dataset / f"fold{fold}" / classifier / condition
    if method == "finetune":
        run = run / f"seed{seed}"
    ids = [f"{dataset}-f{fold}-t{i}" for i in range(len(gold))]
    order = list(range(len(gold)))
    if shuffle is not None:  # the same test items, written in another order
        np.random.default_rng(shuffle).shuffle(order)
    write_csv_rows(run / "predictions.csv", ["id", "gold", "pred", "correct"],
                   [[ids[k], gold[k], "" if pred[k] is None else pred[k], int(gold[k] == pred[k])] for k in order])
    scores = classification_scores(gold, pred, labels, bootstrap=50, seed=0)
    metrics = {"dataset": dataset, "classifier": classifier, "method": method, "condition": condition, "fold": fold,
               "seed": seed if method == "finetune" else None, "model_path": model_path, **scores}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return run / "metrics.json"


def with_predictions(metrics_paths: list[Path]) -> list[tuple[Path, Path]]:
    """Each run's (metrics.json, predictions.csv), as the classification_table rule lists them."""
    return [(path, path.with_name("predictions.csv")) for path in metrics_paths]


def noisy_predictions(gold: list[str], labels: list[str], accuracy: float, rng, n_invalid: int = 0) -> list:
    pred = [g if rng.random() < accuracy else rng.choice([lab for lab in labels if lab != g]) for g in gold]
    for k in rng.choice(len(pred), size=n_invalid, replace=False):
        pred[k] = None
    return pred


def write_curve(root: Path, dataset: str, model: str, ns: list[int], draws: int, rng, start: float = 0.5) -> Path:
    rows = []
    for n in ns:
        for d in range(draws):
            acc = min(1.0, start + 0.08 * math.log2(n) + rng.normal(0, 0.03))
            rows.append([dataset, model, n, d, acc, acc - 0.02, 10.0 ** rng.integers(-2, 2)])
    return write_csv_rows(root / "results/plr" / dataset / model / "curve.csv", ["dataset", "model", "n_per_class",
                                                                                   "draw", "accuracy", "macro_f1", "C"], rows)


def write_zeroshot_none(root: Path, dataset: str, llm: str, accuracy: float, n: int = 40) -> Path:
    labels = ["negative", "positive"]
    gold = [labels[i % 2] for i in range(n)]
    k = round(accuracy * n)
    pred = gold[:k] + [labels[(labels.index(g) + 1) % 2] for g in gold[k:]]
    return write_classification_run(root, "zeroshot", dataset, llm, "none", None, gold, pred, labels, f"models/{llm}")


def write_phrases(root: Path, dataset: str, model: str) -> Path:
    rows = [[dataset, model, label, f"{label} word {r}", 1 + r % 2, 1.0 / (r + 1), 0.1, 3, r + 1]
            for label in ("negative", "positive") for r in range(8)]
    return write_csv_rows(root / "results/plr" / dataset / model / "phrases.csv", PHRASE_COLUMNS, rows)


def write_stability(root: Path, dataset: str, model: str, ns: list[int], draws: int) -> Path:
    """stability.csv as rule plr_explain writes it: draw pairs at every n (rho rising with n), consecutive n."""
    rows = [[dataset, model, label, "draws", n, n, a, b, 40, round(1 - 1 / (n + 1), 4)]
            for n in ns for label in ("negative", "positive") for a in range(draws) for b in range(a + 1, draws)]
    rows += [[dataset, model, label, "n", n_a, n_b, "", "", 40, 0.5]
             for n_a, n_b in zip(ns, ns[1:]) for label in ("negative", "positive")]
    return write_csv_rows(root / "results/plr" / dataset / model / "stability.csv", STABILITY_COLUMNS, rows)


# ----------------------------------------------------------------------------- image checks

def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_png(path: Path, min_side: int = 300, max_side: int = 6000) -> None:
    import matplotlib.image as mpimg

    w, h = png_size(path)
    assert min_side <= w <= max_side and min_side <= h <= max_side, f"{path}: {w}x{h} px"
    pixels = mpimg.imread(path)
    assert pixels.shape[:2] == (h, w)
    assert float(np.std(pixels[..., :3])) > 0.02, f"{path}: looks blank"


def check_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg"), f"{path}: root element is {root.tag}"
    assert float(re.sub(r"[a-z]+$", "", root.attrib["width"])) > 100
    assert sum(1 for _ in root.iter()) > 50, f"{path}: almost empty SVG"


# ----------------------------------------------------------------------------- config hash

def test_config_hash_is_stable_and_sensitive():
    cfg = load_config(REPO / "config/config.yaml")
    h = config_hash(cfg)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    reordered = dict(reversed(list(cfg.items())))
    assert config_hash(reordered) == h
    changed = json.loads(json.dumps(cfg))
    changed["plr"]["draws"] += 1
    assert config_hash(changed) != h
    moved = json.loads(json.dumps(cfg))
    moved["slurm"]["partition"] = "gpu"  # where jobs run is not what they compute
    assert config_hash(moved) == h
    raw = yaml.safe_load((REPO / "config/config.yaml").read_text())
    raw["report"] = {"bootstrap": 1000}  # writing the default explicitly changes nothing
    assert config_hash(validate_config(raw)) == h


# ----------------------------------------------------------------------------- explanation quality

def test_quality_table_agrees_with_the_per_run_files(tmp_path):
    """The one-to-one comparison of a table with the corpus.csv files it was built from."""
    datasets, explainers, shots, seeds = ["nli_a", "nli_b"], ["llm-x", "llm_y"], [0, 2], [0, 1]
    paths = [write_quality_run(tmp_path, d, e, k, s, with_mauve=(e == "llm-x"))
             for d, e, k, s in product(datasets, explainers, shots, seeds)]
    model_paths = {"llm-x": "/models/x", "llm_y": "org/y-hub-id"}
    table = quality_table(paths, config_hash="abc123", model_paths=model_paths)
    assert len(table) == len(datasets) * len(explainers) * len(shots) * len(seeds)
    assert set(map(tuple, table[["dataset", "explainer", "shots", "seed"]].to_numpy().tolist())) == \
        set(product(datasets, explainers, shots, seeds))
    assert (table["fold"] == 0).all() and (table["n_folds"] == 1).all()
    # contract order, mauve (present for one explainer only) in its place
    metric_cols = [c for c in table.columns if f"{c}_ci_low" in table.columns]
    assert metric_cols == ["bleu", "rouge1", "rouge2", "rougeL", "bertscore_p", "bertscore_r", "bertscore_f1", "mauve", "geval"]
    for path in paths:
        corpus = pd.read_csv(path)
        row = table[table["source"] == str(path)]
        assert len(row) == 1
        row = row.iloc[0]
        assert (row["dataset"], row["fold"], row["explainer"], row["shots"], row["seed"]) == \
            tuple(corpus.iloc[0][["dataset", "fold", "explainer", "shots", "seed"]])
        for r in corpus.itertuples():
            assert row[r.metric] == pytest.approx(r.value)
            for field in ("ci_low", "ci_high"):
                expected = getattr(r, field)
                got = row[f"{r.metric}_{field}"]
                assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)
        if "mauve" not in set(corpus["metric"]):
            assert math.isnan(row["mauve"])
        # and the per-example file agrees with the corpus mean it summarises
        per_example = pd.read_csv(path.with_name("per_example.csv"))
        assert row["rougeL"] == pytest.approx(per_example["rougeL"].mean())
        assert row["n"] == len(per_example)
        assert row["config_hash"] == "abc123" and row["model_path"] == model_paths[row["explainer"]]


def test_quality_table_bad_input_names_file_row_and_field(tmp_path):
    path = write_quality_run(tmp_path, "d", "m", 0, 0)
    text = path.read_text().splitlines()
    text[2] = ",".join(v if i != 6 else "high" for i, v in enumerate(text[2].split(",")))
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"corpus\.csv, row 3, field 'value': not a number: 'high'"):
        quality_table([path], config_hash="h")
    other = write_quality_run(tmp_path, "d", "m", 2, 0)
    lines = other.read_text().splitlines()
    lines[1] = lines[1].replace(",m,2,0,", ",m,4,0,")
    other.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"corpus\.csv: holds more than one run .*'shots': 4.*'shots': 2"):
        quality_table([other], config_hash="h")
    # the run is what the file says, wherever the file lies; the same run twice is an error
    text = write_quality_run(tmp_path, "d", "m", 2, 1).read_text().replace(",m,2,1,", ",m,8,3,")
    moved = [write_csv_rows(tmp_path / where / "corpus.csv", [], []) for where in ("a", "b")]
    for path in moved:
        path.write_text(text)
    row = quality_table(moved[:1], config_hash="h").iloc[0]
    assert (row["dataset"], row["explainer"], row["shots"], row["seed"]) == ("d", "m", 8, 3)
    with pytest.raises(DataError, match=r"the same run .*'shots': 8.* is given twice"):
        quality_table(moved, config_hash="h")
    missing = write_csv_rows(tmp_path / "x/corpus.csv", ["dataset", "metric", "value"], [["d", "bleu", 1]])
    with pytest.raises(DataError, match=r"x/corpus\.csv: missing column\(s\)"):
        quality_table([missing], config_hash="h")


def test_quality_table_over_folds_with_unscored_examples_and_label_shares(tmp_path):
    """Five folds of one run: per-fold rows, the mean and sd over folds, n_scored for the metrics
    that need a reference (two examples of fold 3 have none) and the share that names a label."""
    header = ["dataset", "fold", "explainer", "shots", "seed", "metric", "value", "ci_low", "ci_high", "n"]
    rng = np.random.default_rng(5)
    values = {m: rng.uniform(0, 1, 5) for m in ("bleu", "rougeL", "mauve", "states_label")}
    paths = []
    for fold in range(5):
        scored = 28 if fold == 3 else 30
        rows = [["hfc", fold, "smol", 2, 0, m, values[m][fold], "", "", 30 if m == "states_label" else scored]
                for m in values]
        paths.append(write_csv_rows(tmp_path / f"fold{fold}" / "corpus.csv", header, rows))
    table = quality_table(paths, config_hash="h")
    assert list(table["fold"]) == [0, 1, 2, 3, 4] and (table["n_folds"] == 5).all()
    assert list(table["n"]) == [30] * 5 and list(table["n_scored"]) == [30, 30, 30, 28, 30]
    for m, v in values.items():
        assert np.allclose(table[f"{m}_fold_mean"], v.mean())
        assert np.allclose(table[f"{m}_fold_sd"], np.std(v, ddof=1))
    findings = quality.quality_findings(table)
    share = 100 * values["states_label"].mean()
    assert f"hfc: smol 2-shot explanations name a label in {share:.1f}% of test examples (mean over 5 fold(s))" \
        in findings
    md = quality.quality_summary_display(table)
    assert md.iloc[0]["n_scored"] == 148 and md.iloc[0]["folds"] == 5
    assert md.iloc[0]["names a label (mean ± sd)"] == f"{values['states_label'].mean():.3f} ± " \
        f"{np.std(values['states_label'], ddof=1):.3f}"


# ----------------------------------------------------------------------------- classification

def _classification_fixture(root: Path, seeds=(0, 1, 2), folds=(0, 1)):
    """Fine-tuning runs per condition x fold x seed and zero-shot runs per condition x fold; each
    fold tests its own 60 items."""
    labels = ["entailment", "neutral", "contradiction"]
    rng = np.random.default_rng(7)
    gold = [labels[i % 3] for i in range(60)]
    conditions = ["none", "human", "llm-smol-0shot"]
    acc = {"none": 0.5, "human": 0.8, "llm-smol-0shot": 0.55}
    runs, preds = [], {}
    for cond, fold, seed in product(conditions, folds, seeds):
        p = noisy_predictions(gold, labels, acc[cond], rng)
        preds[("finetune", cond, fold, seed)] = p
        runs.append(write_classification_run(root, "finetune", "nli", "enc", cond, seed, gold, p, labels,
                                             "/models/enc", shuffle=seed + 10 * conditions.index(cond), fold=fold))
    for cond, fold in product(conditions, folds):
        p = noisy_predictions(gold, labels, acc[cond] - 0.1, rng, n_invalid=3)
        preds[("zeroshot", cond, fold, None)] = p
        runs.append(write_classification_run(root, "zeroshot", "nli", "llm", cond, None, gold, p, labels, "org/llm",
                                             fold=fold))
    return runs, gold, preds, conditions


def _f1(gold, pred, labels=("entailment", "neutral", "contradiction")) -> float:
    from sklearn.metrics import f1_score

    return f1_score(gold, ["<none>" if p is None else p for p in pred], labels=list(labels), average="macro",
                    zero_division=0)


def test_classification_table_from_predictions(tmp_path):
    runs, gold, preds, conditions = _classification_fixture(tmp_path)
    table = classification_table(with_predictions(runs[::-1]), config_hash="cafe", bootstrap=200)
    assert len(table) == 3 * 2 * 3 + 3 * 2
    assert list(table["condition"][:6]) == ["none"] * 6  # none first, then human, then LLM
    g = np.array(gold)
    for (method, cond, fold, seed), p in preds.items():
        row = table[(table["method"] == method) & (table["condition"] == cond) & (table["fold"] == fold)
                    & ((table["seed"] == seed) if seed is not None else table["seed"].isna())]
        assert len(row) == 1, (method, cond, fold, seed)
        row = row.iloc[0]
        correct = (g == np.array(p, dtype=object)).astype(float)
        assert row["accuracy"] == pytest.approx(correct.mean())
        assert row["macro_f1"] == pytest.approx(_f1(gold, p))
        assert row["n"] == len(gold) and row["n_invalid"] == sum(x is None for x in p)
        assert row["macro_f1_ci_low"] <= row["macro_f1"] <= row["macro_f1_ci_high"]
        assert row["model_path"] == ("/models/enc" if method == "finetune" else "org/llm")
        assert row["config_hash"] == "cafe" and row["source"].endswith("metrics.json")
        base = preds[(method, "none", fold, seed)]
        if cond == "none":
            assert math.isnan(row["diff_macro_f1_vs_none"])
        else:  # paired on ids although the files list the items in different orders
            assert row["diff_macro_f1_vs_none"] == pytest.approx(_f1(gold, p) - _f1(gold, base))
            assert row["diff_accuracy_vs_none"] == pytest.approx(correct.mean() - (g == np.array(base, object)).mean())
            assert row["diff_macro_f1_ci_low"] <= row["diff_macro_f1_vs_none"] <= row["diff_macro_f1_ci_high"]
        # over folds and seeds: mean and sd of every run's score
        runs_of = [(f, s) for (m, c, f, s) in preds if m == method and c == cond]
        f1s = [_f1(gold, preds[(method, cond, f, s)]) for f, s in runs_of]
        assert (row["n_folds"], row["n_seeds"]) == (2, 3 if method == "finetune" else 1)
        assert row["macro_f1_mean"] == pytest.approx(np.mean(f1s))
        assert row["macro_f1_sd"] == pytest.approx(np.std(f1s, ddof=1))
        if cond != "none":
            # pooled over folds: both folds' items together, the mean over seeds of the difference
            seeds = sorted({s for _, s in runs_of}, key=lambda x: -1 if x is None else x)
            both = lambda c, s: [x for f in (0, 1) for x in preds[(method, c, f, s)]]  # noqa: E731
            pooled = np.mean([_f1(gold * 2, both(cond, s)) - _f1(gold * 2, both("none", s)) for s in seeds])
            assert row["pooled_diff_macro_f1_vs_none"] == pytest.approx(pooled)
            assert row["n_pooled"] == 120
            better = sum(np.mean([_f1(gold, preds[(method, cond, f, s)]) - _f1(gold, preds[(method, "none", f, s)])
                                  for s in seeds]) > 0 for f in (0, 1))
            assert row["folds_better_than_none"] == better
    # human explanations (0.8 vs 0.5 accuracy over 2 folds x 3 seeds x 60 items) clearly help
    human = table[(table["method"] == "finetune") & (table["condition"] == "human")].iloc[0]
    assert human["pooled_diff_macro_f1_ci_low"] > 0 and human["folds_better_than_none"] == 2
    findings = classification.classification_findings(table)
    line = next(f for f in findings if "finetune enc: human vs none" in f)
    assert f"macro-F1 {human['pooled_diff_macro_f1_vs_none']:+.3f}" in line and "better in 2 of 2 fold(s)" in line
    assert "helps" in line and "pooled over 2 fold(s)" in line


def test_classification_bad_input(tmp_path):
    labels = ["a", "b"]
    gold = ["a", "b"] * 5
    good = write_classification_run(tmp_path, "finetune", "d", "enc", "none", 0, gold, gold, labels, "m")
    other = write_classification_run(tmp_path, "finetune", "d", "enc", "human", 0, gold, gold, labels, "m")
    pred_file = other.with_name("predictions.csv")
    pred_file.write_text(pred_file.read_text().replace("d-f0-t3,", "d-f0-t99,"))
    with pytest.raises(DataError, match=r"same test ids: 1 only in .*human.* \(e.g. \['d-f0-t99'\]\)"):
        classification_table(with_predictions([good, other]), config_hash="h", bootstrap=20)
    lines = pred_file.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",0"  # says wrong, but gold == pred
    pred_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"predictions\.csv, row 5, field 'correct'"):
        classification_table(with_predictions([other]), config_hash="h", bootstrap=20)
    metrics = json.loads(good.read_text())
    metrics["accuracy"] = 0.5
    good.write_text(json.dumps(metrics))
    with pytest.raises(DataError, match=r"metrics\.json, field 'accuracy': 0.5 but .* gives 1.000000"):
        classification_table(with_predictions([good]), config_hash="h", bootstrap=20)


# ----------------------------------------------------------------------------- PLR

def test_plr_table_learning_curves_and_zeroshot_reference(tmp_path):
    rng = np.random.default_rng(3)
    ns, draws = [2, 4, 8, 16, 32], 4
    curves = [write_curve(tmp_path, "sent", m, ns, draws, rng, start=s) for m, s in (("emb-a", 0.45), ("emb_b", 0.3))]
    zs = [write_zeroshot_none(tmp_path, "sent", "big-llm", 0.75), write_zeroshot_none(tmp_path, "sent", "small", 0.55)]
    table = plr_table(curves, zs, config_hash="f00d", model_paths={"emb-a": "/m/a", "emb_b": "/m/b"}, seed=3)
    assert len(table) == 2 * len(ns)
    for path in curves:
        raw = pd.read_csv(path)
        model = raw["model"].iloc[0]
        means = raw.groupby("n_per_class")["accuracy"].mean()
        for n in ns:
            row = table[(table["model"] == model) & (table["n_per_class"] == n)].iloc[0]
            sel = raw[raw["n_per_class"] == n]
            assert row["accuracy_mean"] == pytest.approx(sel["accuracy"].mean())
            assert row["accuracy_std"] == pytest.approx(np.std(sel["accuracy"], ddof=1))
            assert row["macro_f1_mean"] == pytest.approx(sel["macro_f1"].mean())
            assert row["n_draws"] == draws and row["source"] == str(path) and row["seed"] == 3
            assert row["model_path"] == {"emb-a": "/m/a", "emb_b": "/m/b"}[model]
        for llm, path_zs in (("big-llm", zs[0]), ("small", zs[1])):
            ref = json.loads(path_zs.read_text())["accuracy"]
            assert table.loc[table["model"] == model, zeroshot_column(llm)].eq(ref).all()
            reached = [n for n in ns if means[n] >= ref]
            got = table.loc[table["model"] == model, reach_column(llm)].iloc[0]
            assert (pd.isna(got) and not reached) or got == min(reached)
            assert str(path_zs) in table.loc[table["model"] == model, "zeroshot_sources"].iloc[0]


def test_plr_table_bad_curve(tmp_path):
    rng = np.random.default_rng(0)
    path = write_curve(tmp_path, "sent", "m", [2, 4], 2, rng)
    lines = path.read_text().splitlines()
    lines.append(lines[1])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"curve\.csv, row 6, fields 'n_per_class','draw': \(2, 0\) appears twice"):
        plr_table([path], config_hash="h")


# ----------------------------------------------------------------------------- writing + plots

def report_config(models: dict[str, str]) -> dict:
    """A validated config whose model registry names ``models`` (name -> path)."""
    return validate_config({"datasets": {"nli": {"format": "jsonl", "path": "-", "labels": ["a", "b"]}},
                            "models": {name: {"path": path} for name, path in models.items()},
                            "plr": {"seed": 3}, "report": {"bootstrap": 50, "top_phrases": 3}})


def rule_job(cfg: dict, rule: str, inputs: dict, outputs: dict, **wildcards) -> Job:
    return Job(input=inputs, output=outputs, config=cfg, wildcards=wildcards, settings=rule_settings(cfg, rule),
               rule=rule)


def test_report_rules_write_tables_and_plots(tmp_path):
    """The run(job) of every report rule, as Snakemake calls them: tables from per-run files,
    each row naming the config hash and the model path of the registry; plots from the tables."""
    cfg = report_config({"smol": "/m/smol", "big": "org/big", "a": "/m/a", "b": "/m/b"})
    q_paths = [write_quality_run(tmp_path, "nli", e, k, 0) for e in ("smol", "big") for k in (0, 2)]
    runs, *_ = _classification_fixture(tmp_path, seeds=(0,))
    rng = np.random.default_rng(1)
    curves = [write_curve(tmp_path, "sent", m, [2, 4, 8], 3, rng) for m in ("a", "b")]
    phrase_files = [write_phrases(tmp_path, "sent", m) for m in ("a", "b")]
    stability_files = [write_stability(tmp_path, "sent", "a", [2, 4, 8], 3)]  # b is not explained
    out = tmp_path / "tables"

    def tables(name: str) -> dict:
        return {ext: out / f"{name}.{ext}" for ext in ("csv", "md", "html")}

    quality_job = rule_job(cfg, "quality_table", {"corpus": q_paths}, tables("q"))
    cls_job = rule_job(cfg, "classification_table", {
        "finetune": [r for r in runs if "finetune" in r.parts], "zeroshot": [r for r in runs if "zeroshot" in r.parts],
        "predictions": [p for _, p in with_predictions(runs)]}, tables("c"))
    plr_job = rule_job(cfg, "plr_table", {"curves": curves, "phrases": phrase_files, "stability": stability_files,
                                          "zeroshot": [write_zeroshot_none(tmp_path, "sent", "smol", 0.6)]}, tables("p"))
    q_table, c_table, p_table = quality.run(quality_job), classification.run(cls_job), learning_curves.run(plr_job)
    h = config_hash(cfg)
    for table in (q_table, c_table, p_table):
        assert (table["config_hash"] == h).all()
    assert dict(zip(q_table["explainer"], q_table["model_path"])) == {"smol": "/m/smol", "big": "org/big"}
    assert dict(zip(p_table["model"], p_table["model_path"])) == {"a": "/m/a", "b": "/m/b"}
    assert (p_table["seed"] == 3).all()
    assert len(top_phrases(phrase_files, top=3)) == 2 * 2 * 3
    # CSV round-trips; Markdown has one line per row plus header, rule and the findings
    for name, table in (("q", q_table), ("c", c_table), ("p", p_table)):
        back = read_table(out / f"{name}.csv")
        assert list(back.columns) == list(table.columns) and len(back) == len(table)
        assert "<table" in (out / f"{name}.html").read_text()
    md = (out / "c.md").read_text()
    assert "## Findings" in md and "human vs none" in md and "llm-smol-0shot vs none" in md
    assert md.count("| nli | finetune | enc |") == 3 + 3 * 2  # summary (3 conditions), per run (x 2 folds)
    plr_md = (out / "p.md").read_text()
    assert "reaches smol zero-shot accuracy" in plr_md or "does not reach smol zero-shot accuracy" in plr_md
    assert plr_md.count("| sent | a | negative |") == 3  # the top 3 phrases per model x label
    # stability per n: between draws (mean over pairs and labels), vs the previous n; none for b
    a = p_table[p_table["model"] == "a"].set_index("n_per_class")
    assert a["stability_draws"].to_dict() == pytest.approx({2: 1 - 1 / 3, 4: 0.8, 8: 1 - 1 / 9}, abs=1e-4)
    assert a["stability_vs_previous_n"].isna().tolist() == [True, False, False]
    assert p_table.loc[p_table["model"] == "b", "stability_draws"].isna().all()
    assert "word-rank stability between draws" in plr_md and "correlate 0.667 between draws at n = 2" in plr_md
    # the cross-task summary, from the PLR table
    summary = tasks.run(rule_job(cfg, "plr_task_summary", {"table": out / "p.csv"}, tables("t")))
    per_task = summary[summary["row"] == "task"]
    assert set(per_task["model"]) == {"a", "b"} and (per_task["dataset"] == "sent").all()
    for n in (2, 4, 8):
        assert per_task.set_index("model")[f"plr_accuracy_n{n}"].to_dict() == pytest.approx(
            p_table[p_table["n_per_class"] == n].set_index("model")["accuracy_mean"].to_dict())
    over = summary[summary["row"] == "mean over tasks"].set_index("model")
    assert (over["n_tasks"] == 1).all() and (over["tasks_with_smol"] == 1).all()
    assert over["tasks_reaching_smol"].to_dict() == per_task.set_index("model")["n_per_class_reaching_smol"].notna() \
        .astype(int).to_dict()
    assert "# PLR across tasks" in (out / "t.md").read_text()
    figures = tmp_path / "plots"
    for rule, run, table, wildcards in (("plot_learning_curves", plots.run_learning_curves, "p", {"dataset": "sent"}),
                                        ("plot_classification", plots.run_classification, "c", {"dataset": "nli"}),
                                        ("plot_quality_heatmap", plots.run_quality_heatmap, "q", {"model": "smol"}),
                                        ("plot_quality_overview", plots.run_quality_overview, "q", {"dataset": "nli"})):
        png, svg = figures / f"{rule}.png", figures / f"{rule}.svg"
        run(rule_job(cfg, rule, {"table": out / f"{table}.csv"}, {"png": png, "svg": svg}, **wildcards))
        check_png(png)
        check_svg(svg)
    with pytest.raises(DataError, match="no rows with dataset = 'other'"):
        plot_learning_curves(p_table, "other", figures / "x.png", figures / "x.svg")
    assert not (figures / "x.png").exists()


# ----------------------------------------------------------------------------- Snakemake: the report rules

REPORT_RULES = ["quality_table", "classification_table", "plr_table", "plot_learning_curves",
                "plot_classification", "plot_quality_heatmap", "plot_stability", "plr_task_summary", "all"]


def expected_runs(cfg: dict) -> dict:
    """Every run the report tables must hold, derived from the config alone."""
    e, f, z, p = cfg["explain"], cfg["finetune"], cfg["zeroshot"], cfg["plr"]
    plr_llms = {d: list(dict.fromkeys([m for m in p["models"] if cfg["models"][m]["kind"] == "causal"]
                                      + p["zeroshot_models"])) for d in p["datasets"]}
    return {
        "quality": {(d, k, m, n, s) for d in e["datasets"] for k in fold_list(cfg, d) for m in e["explainers"]
                    for n in shots_for(cfg, d) for s in e["seeds"]},
        "classification": ({(d, "finetune", enc, c, k, s) for d in f["datasets"] for k in fold_list(cfg, d)
                            for enc in f["encoders"] for c in stage_conditions(cfg, "finetune", d) for s in f["seeds"]}
                           | {(d, "zeroshot", m, c, k, None) for d in z["datasets"] for k in fold_list(cfg, d)
                              for m in z["classifiers"] for c in stage_conditions(cfg, "zeroshot", d)}),
        "plr": set(product(p["datasets"], p["models"], p["n_per_class"])),
        "plr_llms": plr_llms,
        "explained": p["models"] if p["explain_models"] is None else p["explain_models"],
        "plots": ([f"learning_curves_{d}" for d in p["datasets"] if p["models"]]
                  + [f"stability_{d}" for d in p["datasets"] if p["models"] and p["explain_models"] != []]
                  + [f"classification_{d}" for d in dict.fromkeys(
                      [d for d in f["datasets"] if f["encoders"]] + [d for d in z["datasets"] if z["classifiers"]])]
                  + [f"quality_heatmap_{m}" for m in e["explainers"] if e["datasets"]]),
    }


def write_stage_outputs(root: Path, cfg: dict) -> None:
    """Per-run files of every stage for ``cfg``, in the contract format (as the stages will write them)."""
    runs, rng = expected_runs(cfg), np.random.default_rng(11)
    for d, fold, e, k, s in runs["quality"]:
        write_quality_run(root, d, e, k, s, fold=fold)
    for d, method, m, c, fold, s in runs["classification"]:
        labels = cfg["datasets"][d]["labels"]
        gold = [labels[i % len(labels)] for i in range(30)]
        write_classification_run(root, method, d, m, c, s, gold, noisy_predictions(gold, labels, 0.6, rng), labels,
                                 cfg["models"][m]["path"], fold=fold)
    for d in cfg["plr"]["datasets"]:
        for m in cfg["plr"]["models"]:
            write_curve(root, d, m, cfg["plr"]["n_per_class"], cfg["plr"]["draws"], rng)
        for m in runs["explained"]:
            write_phrases(root, d, m)
            write_stability(root, d, m, cfg["plr"]["n_per_class"], cfg["plr"]["draws"])
        for llm in runs["plr_llms"][d]:
            if (d, "zeroshot", llm, "none", 0, None) not in runs["classification"]:  # else written above (one run)
                write_zeroshot_none(root, d, llm, 0.62)


def check_report_outputs(root: Path, cfg: dict) -> None:
    """Every table has exactly the rows the config asks for, names its source runs, and every
    plot is a valid image of sensible size."""
    runs, h = expected_runs(cfg), config_hash(cfg)
    tables = root / "results/tables"
    quality = read_table(tables / "explanation_quality.csv")
    assert set(map(tuple, quality[["dataset", "fold", "explainer", "shots", "seed"]].to_numpy().tolist())) == \
        runs["quality"]
    assert len(quality) == len(runs["quality"])
    for m in ("bleu", "rouge1", "rougeL", "bertscore_f1"):
        assert quality[m].notna().all(), m
    cls = read_table(tables / "classification.csv")
    got = {(r.dataset, r.method, r.classifier, r.condition, int(r.fold), None if pd.isna(r.seed) else int(r.seed))
           for r in cls.itertuples()}
    assert got == runs["classification"] and len(cls) == len(runs["classification"])
    assert cls.loc[cls["condition"] != "none", "diff_macro_f1_vs_none"].notna().all()
    assert cls.loc[cls["condition"] != "none", "pooled_diff_macro_f1_vs_none"].notna().all()
    plr = read_table(tables / "plr_learning_curves.csv")
    assert set(map(tuple, plr[["dataset", "model", "n_per_class"]].to_numpy().tolist())) == runs["plr"]
    for d, llms in runs["plr_llms"].items():
        for llm in llms:
            assert plr.loc[plr["dataset"] == d, zeroshot_column(llm)].notna().all()
    for table in (quality, cls, plr):
        assert (table["config_hash"] == h).all()
        assert table["model_path"].notna().all() and (table["model_path"].str.len() > 0).all()
        assert all((root / src).exists() for src in table["source"])
    assert quality["seed"].notna().all() and plr["seed"].notna().all()
    assert plr.loc[plr["model"].isin(runs["explained"]), "stability_draws"].notna().all()
    across = read_table(tables / "plr_tasks.csv")
    assert set(map(tuple, across.loc[across["row"] == "task", ["dataset", "model"]].to_numpy().tolist())) == \
        {(d, m) for d, m, _ in runs["plr"]}
    for name in ("explanation_quality", "classification", "plr_learning_curves", "plr_tasks"):
        assert (tables / f"{name}.md").read_text().startswith("# ")
        assert "<table" in (tables / f"{name}.html").read_text()
    for name in runs["plots"]:
        check_png(root / "results/plots" / f"{name}.png")
        check_svg(root / "results/plots" / f"{name}.svg")
    assert sorted(p.stem for p in (root / "results/plots").glob("*.png")) == sorted(runs["plots"])
    compare_with_sources(root, quality, cls, plr)


def compare_with_sources(root: Path, quality: pd.DataFrame, cls: pd.DataFrame, plr: pd.DataFrame) -> None:
    """Each figure of each table equals what its source file says (recomputed where it can be)."""
    for row in quality.itertuples():
        corpus = pd.read_csv(root / row.source)
        for r in corpus.itertuples():
            assert getattr(row, r.metric) == pytest.approx(r.value, rel=1e-5, nan_ok=True), (row.source, r.metric)
    for row in cls.itertuples():
        preds = pd.read_csv(root / row.source.replace("metrics.json", "predictions.csv"), dtype=str, keep_default_na=False)
        assert row.accuracy == pytest.approx((preds["gold"] == preds["pred"]).mean(), rel=1e-5)
        labels = json.loads((root / row.source).read_text())["labels"]
        assert row.macro_f1 == pytest.approx(_f1(preds["gold"], preds["pred"].replace("", None), labels), rel=1e-5)
        assert row.n == len(preds)
        assert row.model_path == json.loads((root / row.source).read_text())["model_path"]
    for row in plr.itertuples():
        curve = pd.read_csv(root / row.source)
        assert row.accuracy_mean == pytest.approx(curve.loc[curve["n_per_class"] == row.n_per_class, "accuracy"].mean(), rel=1e-5)


def render_report(root: Path, extra: list[str] = ()) -> Path:
    out = root / "results/report.html"
    proc = subprocess.run(SNAKEMAKE + ["--cores", "1", *extra, "--report", str(out)], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    for needle in ["learning_curves_", "classification.html", "explanation_quality.html", "plr_learning_curves.csv",
                   "answers research question 2", "paired bootstrap"]:
        assert needle in text, needle
    return out


@pytest.mark.slow
def test_report_rules_in_snakemake_on_contract_files(tmp_path):
    """The real report rules and `snakemake --report`, on per-run files written to the contract
    for the default config (the stage rules are not run here: --allowed-rules)."""
    root = copy_workflow(tmp_path / "repo")
    cfg = load_config(root / "config/config.yaml")
    write_stage_outputs(root, cfg)
    allowed = ["--allowed-rules", *REPORT_RULES]
    proc = subprocess.run(SNAKEMAKE + ["--cores", "2", *allowed], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_report_outputs(root, cfg)
    render_report(root, allowed)


# ----------------------------------------------------------------------------- end to end: the real default pipeline

@pytest.mark.slow
def test_default_pipeline_end_to_end(default_run):
    """The default config run to the end (conftest.default_run), then `snakemake --report`."""
    assert default_run.returncode == 0, default_run.output[-6000:]
    cfg = load_config(default_run.root / default_run.configfile)
    check_report_outputs(default_run.root, cfg)
    render_report(default_run.root, [*TRIGGERS, "--configfile", default_run.configfile])
    # the study's main effect on real e-SNLI: the human explanation lifts the fine-tuned encoder,
    # and the paired interval of the difference from no explanation excludes 0
    cls = read_table(default_run.root / "results/tables/classification.csv")
    human = cls[(cls["method"] == "finetune") & (cls["condition"] == "human")]
    assert len(human) == 1, cls
    assert human["diff_macro_f1_ci_low"].iloc[0] > 0, human.to_dict("records")
    # LLM engine starts, counted in the jobs' logs (README, "Engine starts"): SmolLM2 on e-SNLI is
    # served, so one start answers every zero-shot condition and the G-Eval judging; one more writes
    # the explanations and one embeds (the occluded texts with it: plr_explain loads no model)
    from support.ops import engine_starts

    assert engine_starts(default_run.root) == {"explain": 1, "serve_llm": 1, "embed": 1}, \
        engine_starts(default_run.root)


def test_the_cross_task_summary_counts_the_tasks_each_baseline_is_reached_on(tmp_path):
    """Two tasks x one model (names with hyphens, as model names are): PLR reaches gpt-4o-mini on one."""
    rows = []
    for dataset, accs, zs, reach in (("sst2", (0.6, 0.8, 0.9), 0.75, 16), ("healthfc", (0.4, 0.5, None), 0.7, None)):
        for n, acc in zip((4, 16, 128), accs):
            if acc is not None:
                rows.append({"dataset": dataset, "model": "smol-q8", "n_per_class": n, "accuracy_mean": acc,
                             "zeroshot_accuracy_gpt-4o-mini": zs, "n_per_class_reaching_gpt-4o-mini": reach})
    plr = pd.DataFrame(rows)
    plr.to_csv(tmp_path / "plr.csv", index=False)
    out = {ext: tmp_path / f"t.{ext}" for ext in ("csv", "md", "html")}
    table = tasks.run(Job(input={"table": tmp_path / "plr.csv"}, output=out, config={}, rule="plr_task_summary"))
    per_task, over = table[table["row"] == "task"].set_index("dataset"), table[table["row"] == "mean over tasks"].iloc[0]
    assert pd.isna(per_task.loc["healthfc", "plr_accuracy_n128"])  # HealthFC's classes are too small for 128
    assert per_task.loc["sst2", "n_per_class_reaching_gpt-4o-mini"] == 16
    assert pd.isna(per_task.loc["healthfc", "n_per_class_reaching_gpt-4o-mini"])
    assert over["n_tasks"] == 2 and over["tasks_reaching_gpt-4o-mini"] == 1 and over["tasks_with_gpt-4o-mini"] == 2
    assert over["plr_accuracy_n4"] == pytest.approx(0.5) and over["plr_accuracy_n128"] == pytest.approx(0.9)
    md = out["md"].read_text()
    assert "PLR on smol-q8 reaches gpt-4o-mini zero-shot on 1 of 2 task(s) (median n 16 per class)" in md
