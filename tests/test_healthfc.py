"""HealthFC end to end without an engine: the real CSV (750 claims, nine without a reference),
its own prompts for every stage (explain, classify, G-Eval), the human condition on claims
without a reference, and the fold placement of all claims."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import HEALTHFC_LABELS
from explainbench.classify.conditions import attach_explanations, empty_explanations
from explainbench.classify.zeroshot import build_messages, verbalizers
from explainbench.config import dataset_entry
from explainbench.data import load_dataset
from explainbench.explanations.generate import build_prompt
from explainbench.explanations.geval import geval_prompt, load_geval_template
from explainbench.prompts import dataset_template, prompt_folder
from explainbench.splits import fold_split, prepare_examples

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts"


@pytest.fixture(scope="module")
def spec(healthfc_path):
    """A HealthFC entry under another name: `prompts: healthfc` gives it HealthFC's own templates."""
    return dataset_entry(format="healthfc", path=str(healthfc_path), labels=HEALTHFC_LABELS, prompts="healthfc",
                         split={"folds": 5, "dev": 0})


@pytest.fixture(scope="module")
def records(spec):
    return load_dataset(spec, "hfc_copy")


def test_nine_claims_have_no_reference_and_are_no_error(records):
    missing = [r for r in records if not r["explanations"]]
    assert len(records) == 750 and len(missing) == 9
    human = attach_explanations(records, "human", source="healthfc")
    assert empty_explanations(human) == 9
    assert all(h["explanation"] == " ".join(r["explanations"][0].split()) for h, r in zip(human, records)
               if r["explanations"])


@pytest.mark.parametrize("stage, needle", [("explain", "Claim: {hypothesis}"), ("classify", "Claim: {hypothesis}"),
                                           ("geval", "Claim: {hypothesis}")])
def test_every_stage_has_its_own_healthfc_prompt(spec, stage, needle):
    template = dataset_template(PROMPTS, stage, "hfc_copy", spec)
    assert template["__file__"].endswith(f"healthfc/{stage}.yaml")
    text = " ".join(str(v) for v in template.values())
    assert needle in text and "Premise:" not in text and "Hypothesis:" not in text
    assert prompt_folder("hfc_copy", spec) == "healthfc"


def test_the_prompts_read_claim_and_evidence(spec, records):
    record = next(r for r in records if r["label"] == "not enough information")
    explain = build_prompt(dataset_template(PROMPTS, "explain", "hfc_copy", spec), record, [], show_label=True,
                           labels=HEALTHFC_LABELS)
    assert f"Claim: {record['hypothesis']}" in explain[-1]["content"]
    assert "Do not state, name or hint at the verdict" in " ".join(explain[-1]["content"].split())
    words = verbalizers(HEALTHFC_LABELS, None)
    classify = build_messages(record, dataset_template(PROMPTS, "classify", "hfc_copy", spec), words, False)
    assert f"Evidence: {record['premise']}" in classify[-1]["content"]
    assert "supported, not enough information or refuted" in classify[-1]["content"]
    assert "{label}" not in str(dataset_template(PROMPTS, "classify", "hfc_copy", spec))  # never the gold verdict
    judge = geval_prompt(load_geval_template(str(PROMPTS), "healthfc", "nli"), "faithfulness", record,
                         "an explanation", HEALTHFC_LABELS)
    assert f"Verdict: {record['label']}" in judge[-1]["content"] and "Faithfulness to the verdict" in judge[-1]["content"]


def test_all_claims_in_five_test_folds(spec):
    examples = prepare_examples(spec, "hfc_copy")
    sizes = [len(fold_split(examples, k)["test"]) for k in range(5)]
    assert sizes == [150] * 5 and all(len(fold_split(examples, k)["train"]) == 600 for k in range(5))  # 600/150
