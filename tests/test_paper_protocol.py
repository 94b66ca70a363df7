"""config/paper.yaml holds Dhaini et al.'s protocol, value by value.

Each assertion cites the file of the study's official code (github
dmah10/helpful-natural-language-explanations, MIT) that fixes the value. Where this pipeline
deliberately differs, the comment says how and why.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from explainbench.config import load_config
from explainbench.prompts import dataset_template
from explainbench.workflow import demonstration_count, fold_list, shots_for, stage_conditions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(ROOT / "config" / "paper.yaml")


def test_datasets_subsets_and_folds(paper):
    esnli, healthfc = paper["datasets"]["esnli"], paper["datasets"]["healthfc"]
    # data.py: load_dataset_to_split reads "esnli_balanced_final"; generate_explanations/script_esnli.py
    # reads balanced_esnli_subset.xlsx: 840 pairs, 280 per class (the study's data/ files hold 840 rows)
    assert esnli["sample_per_class"] == 280
    assert esnli["sampling"] == "balanced"
    assert esnli["labels"] == ["entailment", "neutral", "contradiction"]  # script_esnli.py: 0/1/2
    # data.py: "HFC_final", all 750 claims; script_hfc.py: Supported = 0, Not enough information = 1, Refuted = 2
    assert healthfc["sample_per_class"] is None
    assert healthfc["labels"] == ["supported", "not enough information", "refuted"]
    # main.py: "we repeat fives times, each on splits with disjoint test sets" (split_idx 0..4)
    assert esnli["split"]["folds"] == 5 and healthfc["split"]["folds"] == 5
    assert fold_list(paper, "esnli") == [0, 1, 2, 3, 4] and fold_list(paper, "healthfc") == [0, 1, 2, 3, 4]
    # data.py: load_dataset reads <name>_<model>_<type>_<k>_train.csv and _test.csv only: no dev
    # split (672/168 for e-SNLI, 600/150 for HealthFC)
    assert esnli["split"]["dev"] == 0 and healthfc["split"]["dev"] == 0


def test_explanations(paper):
    e = paper["explain"]
    assert e["datasets"] == ["esnli", "healthfc"]
    # generate_explanations/script_esnli.py: five demonstrations in the prompt;
    # generate_explanations/script_hfc.py: two
    assert shots_for(paper, "esnli") == [0, 5]
    assert shots_for(paper, "healthfc") == [0, 2]
    # script_esnli.py / script_hfc.py: the same demonstrations for every example. (There they are
    # pairs of the study's own 840, so they sit in test folds; here the data stage reserves them.)
    assert e["demonstrations"] == "fixed"
    assert demonstration_count(paper, "esnli") == 5 and demonstration_count(paper, "healthfc") == 2
    # script_esnli.py / script_hfc.py: make_groq_call(..., temperature=0.0)
    assert e["temperature"] == 0.0
    # script_esnli.py: 'Label: "{label_num}"' is in the prompt: the explainer sees the gold label
    assert e["show_label"] is True
    # script_esnli.py: "Provide exactly one sentence ... should not explicitly hint at the label or
    # contain the label itself in any form"; script_hfc.py: "the concise explanation in one sentence"
    for dataset in ("esnli", "healthfc"):
        instruction = dataset_template(paper["prompts_dir"], "explain", dataset,
                                       paper["datasets"][dataset])["instruction_with_label"]
        assert "one" in instruction and "sentence" in instruction
        assert "Do not state, name or hint at the" in " ".join(instruction.split())
    # the explainers of the study's data/ files: gpt4o (GPT-4o mini), llama3 (70B), gemma2 (9B), mixtral
    assert e["explainers"] == ["gpt-4o-mini", "mixtral-8x7b", "gemma-2-9b", "llama-3-70b"]


def test_fine_tuning(paper):
    f = paper["finetune"]
    # parser.py: --epochs 1.0, --max-length 512, --batch-size 8, --learning-rate 1e-5, --weight-decay 0.01
    # (train.py builds AdamW(model.parameters(), lr=...) itself; the decay goes to TrainingArguments)
    assert f["epochs"] == 1
    assert f["max_length"] == 512
    assert f["batch_size"] == 8
    assert f["learning_rate"] == pytest.approx(1e-5)
    assert f["weight_decay"] == pytest.approx(0.01)
    # train.py: get_scheduler("cosine", ..., num_warmup_steps=int(0.1 * num_training_steps))
    assert f["schedule"] == "cosine"
    assert f["warmup_ratio"] == pytest.approx(0.1)
    # train.py: evaluation_strategy="no", eval_dataset=None: no model selection, the last epoch is tested
    assert f["early_stopping"] is False
    # train.py: sep_append: text + " [SEP] " + explanation (the explanation after the pair; {sep} is
    # each encoder's own separator token here, [SEP] for BERT)
    assert f["template"] == "{premise} {sep} {hypothesis} {sep} {explanation}"
    # main.py: one run per split (fold), no repeated seeds
    assert f["seeds"] == [0]
    # parser.py / README.md: --explanations: none, human, llm
    assert f["conditions"] == ["none", "human", "llm"]
    # the paper's encoder PLMs: BERT, DeBERTa, RoBERTa, ModernBERT, each reading 512 tokens
    assert f["encoders"] == ["bert-base", "deberta-v3-base", "roberta-base", "modernbert-base"]
    assert all(paper["models"][m]["max_model_len"] == 512 for m in f["encoders"])
    # the leak check of this pipeline: every LLM condition also with its label words removed
    assert "llm-gpt-4o-mini-5shot-masked" in stage_conditions(paper, "finetune", "esnli")


def test_zero_shot_and_quality(paper):
    # the paper's LLM classifiers: GPT-4o mini (a chat-only OpenAI model: read through
    # /chat/completions logprobs) and two open models
    z = paper["zeroshot"]
    assert z["classifiers"][0] == "gpt-4o-mini"
    gpt = paper["models"]["gpt-4o-mini"]
    assert gpt["backend"] == "openai" and gpt["chat_template"] is True and gpt["api_base"].endswith("/v1")
    # BERTScore on roberta-large at bert-score's own default layer for it (17)
    q = paper["quality"]
    assert paper["models"][q["bertscore"]["model"]]["path"] == "FacebookAI/roberta-large"
    assert q["bertscore"]["num_layers"] == 17


