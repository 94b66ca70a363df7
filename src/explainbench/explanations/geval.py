"""G-Eval (Liu et al. 2023): an LLM judge rates each explanation on criteria with a 1-5 rubric.

For each criterion the judge sees the criterion, its evaluation steps, the premise, the
hypothesis, the gold label and the explanation, and is asked for a rating. Instead of
sampling a rating, we read the judge's log-probability of each rating token ("1" .. "5")
through :meth:`explainbench.backends.Backend.label_logprobs` (any backend: vLLM,
transformers, an OpenAI-compatible server), renormalise over the five ratings and take the
probability-weighted mean rating, as G-Eval does::

    score = sum_k k * p(k) / sum_k p(k)

The per-criterion scores are reported as ``geval_<criterion>``; ``geval`` is their mean.
The prompt, the rating tokens and the criteria live in a data file
(``config/prompts/<task or dataset>/geval.yaml``).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..prompts import PromptError, fill, load_template

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("prompt", "ratings", "criteria")


def load_geval_template(prompts_dir: str, dataset: str, task: str = "nli") -> dict:
    """The G-Eval template of a dataset, checked: a prompt, numeric rating tokens, criteria."""
    template = load_template(prompts_dir, "geval", dataset, task)
    where = template["__file__"]
    for key in REQUIRED_KEYS:
        if key not in template:
            raise PromptError(f"{where}: missing key {key!r}")
    ratings = template["ratings"]
    if not isinstance(ratings, list) or len(ratings) < 2:
        raise PromptError(f"{where}, key 'ratings': expected a list of at least two rating tokens")
    try:
        [float(r) for r in ratings]
    except (TypeError, ValueError):
        raise PromptError(f"{where}, key 'ratings': every rating token must be a number, got {ratings}") from None
    criteria = template["criteria"]
    if not isinstance(criteria, dict) or not criteria:
        raise PromptError(f"{where}, key 'criteria': expected a mapping of criterion names")
    for name, crit in criteria.items():
        for key in ("name", "definition", "steps"):
            if not isinstance(crit, dict) or key not in crit:
                raise PromptError(f"{where}, criteria.{name}: missing key {key!r}")
    return template


def select_criteria(template: dict, names: Sequence[str] | None) -> list[str]:
    """The criteria to score: ``names`` (checked against the file), or all in the file."""
    available = list(template["criteria"])
    if not names:
        return available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise PromptError(f"{template['__file__']}: unknown G-Eval criteria {unknown} (quality.geval.criteria); "
                          f"the file defines {available}")
    return list(names)


def geval_prompt(template: dict, criterion: str, record: dict, explanation: str, labels: Sequence[str] = ()) -> list[dict]:
    """The judge's chat prompt for one explanation of one record on one criterion."""
    crit = template["criteria"][criterion]
    steps = crit["steps"]
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1)) if isinstance(steps, list) else str(steps)
    values = {k: v for k, v in record.items() if isinstance(v, str)}
    values.update(criterion=crit["name"], definition=" ".join(str(crit["definition"]).split()), steps=steps,
                  explanation=explanation, labels=", ".join(labels))
    messages = []
    if template.get("system"):
        messages.append({"role": "system", "content": template["system"]})
    messages.append({"role": "user", "content": fill(template, "prompt", **values)})
    return messages


def rating_scores(logprobs: np.ndarray, ratings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probability-weighted mean rating of each row, renormalised over the rating tokens.

    Returns (scores, mass): ``mass`` is the judge's total probability on the rating tokens
    before renormalising (how much it wanted to answer with a rating at all).
    """
    lp = np.asarray(logprobs, dtype=float)
    values = np.array([float(r) for r in ratings])
    top = lp.max(axis=1, keepdims=True)
    finite = np.isfinite(top[:, 0])
    weights = np.exp(lp - np.where(np.isfinite(top), top, 0.0))
    probs = weights / np.where(finite[:, None], weights.sum(axis=1, keepdims=True), 1.0)
    scores = np.where(finite, probs @ values, np.nan)
    mass = np.exp(lp).sum(axis=1)
    return scores, mass


def geval_scores(backend, template: dict, records: Sequence[dict], explanations: Sequence[str], *,
                 criteria: Sequence[str] | None = None, labels: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """G-Eval scores of each explanation: ``geval_<criterion>`` per criterion and ``geval`` (their mean)."""
    if len(records) != len(explanations):
        raise ValueError(f"{len(records)} records but {len(explanations)} explanations")
    names = select_criteria(template, criteria)
    labels = list(labels) or list(dict.fromkeys(r["label"] for r in records if "label" in r))
    ratings = [str(r) for r in template["ratings"]]
    out: dict[str, np.ndarray] = {}
    asked = {name: [geval_prompt(template, name, rec, expl, labels) for rec, expl in zip(records, explanations)]
             for name in names}
    reserve = backend.answer_reserve(ratings)
    for name, prompts in asked.items():  # before the judge's engine starts: every prompt fits
        backend.check_fits(prompts, reserve, [r.get("id", i) for i, r in enumerate(records)],
                           f"{template['__file__']} (criterion {name})")
    for name, prompts in asked.items():
        scores, mass = rating_scores(backend.label_logprobs(prompts, ratings), ratings)
        out[f"geval_{name}"] = scores
        log.info("G-Eval %s: %d explanations, mean %.3f, mean probability on the rating tokens %.3f",
                 name, len(prompts), float(np.nanmean(scores)) if len(scores) else float("nan"),
                 float(mass.mean()) if len(mass) else float("nan"))
    out["geval"] = np.nanmean(np.vstack([out[f"geval_{n}"] for n in names]), axis=0) if len(records) else np.zeros(0)
    return out
