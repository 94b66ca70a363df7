"""Prompt templates are data files: ``<prompts_dir>/<task>/<stage>.yaml``.

A dataset can override any of them with ``<prompts_dir>/<dataset>/<stage>.yaml`` (``<dataset>`` is
the dataset entry's ``prompts`` folder name, by default the dataset's own name). Stages
(``explain``, ``classify``, ``embed``, ``geval``, ...) decide which keys their file holds;
placeholders use ``str.format`` syntax and are filled from the record and extra values.
"""
from __future__ import annotations

import string
from pathlib import Path

import yaml

from .errors import ExplainBenchError


class PromptError(ExplainBenchError):
    """A template file is missing, lacks a key, or uses a placeholder nobody fills."""


def template_path(prompts_dir: str | Path, stage: str, dataset: str, task: str) -> Path:
    base = Path(prompts_dir)
    for candidate in (base / dataset / f"{stage}.yaml", base / task / f"{stage}.yaml"):
        if candidate.exists():
            return candidate
    raise PromptError(f"no prompt template for stage {stage!r}: looked for {base / dataset / f'{stage}.yaml'} "
                      f"and {base / task / f'{stage}.yaml'}")


def load_template(prompts_dir: str | Path, stage: str, dataset: str, task: str) -> dict:
    """The template dict of a stage for a dataset (dataset override, else the task's)."""
    path = template_path(prompts_dir, stage, dataset, task)
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping of template keys")
    data["__file__"] = str(path)
    return data


def prompt_folder(name: str, spec: dict) -> str:
    """The folder of a dataset's own templates: its entry's ``prompts``, else its name."""
    return spec.get("prompts") or name


def dataset_template_path(prompts_dir: str | Path, stage: str, name: str, spec: dict) -> Path:
    """:func:`template_path` for dataset ``name`` with validated entry ``spec``."""
    return template_path(prompts_dir, stage, prompt_folder(name, spec), spec["task"])


def dataset_template(prompts_dir: str | Path, stage: str, name: str, spec: dict) -> dict:
    """:func:`load_template` for dataset ``name`` with validated entry ``spec``."""
    return load_template(prompts_dir, stage, prompt_folder(name, spec), spec["task"])


def fill(template: dict, key: str, **values) -> str:
    """Fill ``template[key]``; a placeholder without a value is an error naming file and key."""
    if key not in template:
        raise PromptError(f"{template.get('__file__', '<template>')}: missing key {key!r}")
    text = template[key]
    needed = {f for _, f, _, _ in string.Formatter().parse(text) if f}
    missing = sorted(needed - set(values))
    if missing:
        raise PromptError(f"{template.get('__file__', '<template>')}, key {key!r}: no value for {missing}")
    return text.format(**values)
