"""Engines behind one interface (:class:`~explainbench.engines.base.Backend`).

A registry maps each ``backend:`` value of a model entry to ``"module:Class"``, loaded only
when used (as lm-evaluation-harness maps model names), so importing this package imports no
engine, and a new engine is one file here and one line below::

    with open_backend(config["models"]["smollm2"], "smollm2") as llm:
        llm.generate([[{"role": "user", "content": "Why is the sky blue?"}]], max_new_tokens=32)
"""
from __future__ import annotations

import importlib

from .base import Backend, BackendError, Generation, Messages, engines_started, prompt_hash

BACKENDS: dict[str, str] = {
    "transformers": "explainbench.engines.transformers:TransformersBackend",
    "vllm": "explainbench.engines.vllm:VLLMBackend",
    "openai": "explainbench.engines.openai:OpenAIBackend",
    "llamacpp": "explainbench.engines.llamacpp:LlamaCppBackend",
}


def backend_class(which: str, name: str = "model") -> type[Backend]:
    """The Backend subclass registered as ``which`` (imported on first use)."""
    if which not in BACKENDS:
        raise BackendError(f"model {name!r}: unknown backend {which!r}; available: {sorted(BACKENDS)}")
    module, cls = BACKENDS[which].split(":")
    return getattr(importlib.import_module(module), cls)


def load_backend(spec: dict, name: str = "model", backend: str | None = None) -> Backend:
    """The backend a model's config entry names (or ``backend`` to override it). Engines start
    on first use; call ``close()`` when done, or use :func:`open_backend`."""
    return backend_class(backend or spec["backend"], name)(spec, name)


def open_backend(spec: dict, name: str = "model", backend: str | None = None, service: str | None = None) -> Backend:
    """:func:`load_backend` for a ``with`` block: the engine is closed when the block ends.
    ``service``: the file of the rule-``serve_llm`` server of this model (the job's input, see
    :mod:`~explainbench.engines.serve`): then the engine is that server, and nothing is loaded."""
    if service:
        from .serve import served_backend

        return served_backend(spec, name, service)
    return load_backend(spec, name, backend)


__all__ = ["BACKENDS", "Backend", "BackendError", "Generation", "Messages", "backend_class", "engines_started",
           "load_backend", "open_backend", "prompt_hash"]
