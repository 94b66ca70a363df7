"""Configs that tests and benchmarks share (derived from the default config/config.yaml)."""
from __future__ import annotations

import copy


def zeroshot_and_judge(default: dict, *, per_class: int = 8, folds: int = 2, serve: bool = True) -> dict:
    """The default config cut to the stages that ask an LLM the most often: SmolLM2 explains
    e-SNLI zero-shot once, then judges its explanations (G-Eval, one criterion) and classifies
    with no / human / its own explanation, in every fold. ``per_class`` pairs a label, ``folds``
    folds; ``serve``: those jobs ask one rule-serve_llm server instead of loading the model."""
    config = copy.deepcopy(default)
    config["models"]["smollm2"]["serve"] = serve
    config["datasets"]["esnli"].update(sample_per_class=per_class, split={"folds": folds, "dev": 0, "seed": 0})
    config["explain"].update(shots=[0], max_new_tokens=24)
    config["quality"].update(bertscore={"model": None}, mauve={"model": None}, geval={"criteria": ["coherence"]},
                             bootstrap=20)
    config["finetune"]["datasets"] = []
    config["zeroshot"].update(datasets=["esnli"], classifiers=["smollm2"], conditions=["none", "human", "llm"])
    config["plr"].update(datasets=[], models=[])
    config["report"] = dict(config.get("report") or {}, bootstrap=20)
    return config
