"""explainbench: do LLM explanations help classifiers, and is a small LLM + PLR enough?

The library behind the Snakemake workflow. Its folders mirror ``workflow/rules/``:

- ``engines/``       one interface (generate, label log-probabilities, embed) for vLLM,
                     transformers and OpenAI-compatible servers, behind a lazy registry
- ``explanations/``  Study 1: LLM-written explanations and their quality (text metrics, G-Eval)
- ``classify/``      Study 1: fine-tuned encoders and zero-shot LLMs, per explanation condition
- ``plr/``           Study 2: prompt-wrapped embeddings, penalised logistic regression, its
                     learning curve and occlusion explanations
- ``report/``        the tables with their findings, Markdown/HTML rendering, plots

At the top: ``config`` (load and validate), ``data`` (loaders), ``splits``, ``prompts``,
``stats``, ``provenance``, ``files`` (every intermediate file's columns, writer and checked
reader), ``io`` (atomic writes), ``demo``, and ``workflow`` (the Snakemake glue: ``Job``).

The names a library user needs are importable from here (loaded on first use, so
``import explainbench`` stays cheap)::

    from explainbench import load_config, prepare_dataset, open_backend
"""
from __future__ import annotations

import importlib

from .errors import ExplainBenchError

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_config": "config", "validate_config": "config", "ConfigError": "config",
    "load_dataset": "data", "prepare_dataset": "splits",
    "load_backend": "engines", "open_backend": "engines", "Backend": "engines", "BackendError": "engines",
    "Job": "workflow",
    "explain": "explanations.generate:run", "score_explanations": "explanations.scoring:run",
    "finetune": "classify.finetune:run", "zeroshot": "classify.zeroshot:run",
    "embed": "plr.embed:run", "plr_curve": "plr.curve:run", "plr_explain": "plr.occlusion:run",
    "PLRClassifier": "plr.classifier",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'explainbench' has no attribute {name!r}")
    module, _, attr = _EXPORTS[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr or name)


__all__ = ["ExplainBenchError", *_EXPORTS]
