"""llama.cpp (llama-cpp-python) as a :class:`~explainbench.engines.base.Backend`: any GGUF file, on CPU
(or a GPU build), at the quantisation the model entry asks for.

``path`` is a GGUF file (local, or ``org/repo/file.gguf`` on the hub); with ``quantization``
(``q8_0``, ``q4_0``, ...) the engine runs the file rule ``quantize`` made from it
(:func:`explainbench.engines.gguf.model_gguf`). Prompts are rendered and tokenised as for every
engine, with the tokenizer transformers reads from the same GGUF file, and the token ids go to
llama.cpp as they are: the prompt an engine sees is the same across engines.

- ``generate``: llama.cpp's sampler, greedy at temperature 0.
- ``label_logprobs``: exact, as the other engines: the sum of each option token's log-probability
  after the prompt and the option's earlier tokens (the chain rule, :func:`option_steps`); each
  question reuses the KV cache of the longest prefix it shares with the one before.
- ``dtype: float32`` keeps llama.cpp's KV cache in f32 (llama.cpp's own is f16, which moves
  SmolLM2's label log-probabilities by up to 1e-2 from transformers' f32 on the same weights;
  with an f32 cache they agree to 1e-4); other values leave llama.cpp's f16 cache.
- ``embed``: the final (normed) hidden state of the last prompt token, llama.cpp's LAST pooling
  (``mean``: its MEAN pooling), from a second llama.cpp context made for embeddings.

Needs llama-cpp-python >= 0.3.24 (older versions return wrong batched embeddings).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from .base import Backend, BackendError, Generation, note_engine_start, option_scores, option_steps

log = logging.getLogger(__name__)

_POOLING = {"last": "LLAMA_POOLING_TYPE_LAST", "mean": "LLAMA_POOLING_TYPE_MEAN", "cls": "LLAMA_POOLING_TYPE_CLS"}


class LlamaCppBackend(Backend):
    """llama.cpp through llama-cpp-python: one context for generation and label scoring, one for
    embeddings (each made on first use)."""

    def __init__(self, spec: dict, name: str = "model"):
        super().__init__(spec, name)
        from ..config import gguf_path_problem, quant_type_problem

        if spec.get("kind", "causal") != "causal":
            raise BackendError(f"model {name!r}: backend llamacpp runs causal LMs (models.{name}.kind)")
        problem = gguf_path_problem(name, spec["path"]) or quant_type_problem(name, spec.get("quantization"))
        if problem:
            raise BackendError(f"model {name!r}: {problem}")
        self._engines: dict[str, Any] = {}
        self._gguf = None

    # -- files ---------------------------------------------------------------------------------
    @property
    def gguf(self):
        """The GGUF file llama.cpp runs (the quantised one when ``quantization`` is set)."""
        if self._gguf is None:
            from .gguf import GGUFError, model_gguf

            try:
                self._gguf = model_gguf(self.spec, self.name)
            except GGUFError as err:
                raise BackendError(str(err)) from None
        return self._gguf

    @property
    def tokenizer(self):
        """transformers' tokenizer of the model's own GGUF file (the vocabulary is the same at every
        quantisation)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from .gguf import GGUFError, source_gguf

            try:
                src = source_gguf(self.spec, self.name)
                self._tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
            except GGUFError as err:
                raise BackendError(str(err)) from None
            except (OSError, ValueError, KeyError) as err:
                raise BackendError(f"model {self.name!r}: cannot read a tokenizer from {self.spec['path']!r} "
                                   f"(models.{self.name}.path): {err}") from None
        return self._tokenizer

    # -- engines -------------------------------------------------------------------------------
    def _engine(self, runner: str, pooling: str = "last"):
        key = runner if runner == "generate" else f"embed:{pooling}"
        if key not in self._engines:
            try:
                import llama_cpp
            except ImportError as err:
                raise BackendError(f"model {self.name!r}: backend llamacpp needs llama-cpp-python>=0.3.24 ({err}); "
                                   "see requirements/cpu.txt") from None
            path = self.gguf
            limit = self.spec["max_model_len"]
            threads = len(os.sched_getaffinity(0))
            kwargs: dict[str, Any] = dict(n_ctx=limit, n_batch=limit, n_ubatch=min(limit, 512), n_threads=threads,
                                          n_threads_batch=threads, n_gpu_layers=-1, seed=0, verbose=False)
            if self.spec["dtype"] == "float32":  # llama.cpp keeps its KV cache in f16 unless told
                kwargs.update(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
            if runner == "embed":
                kwargs.update(embedding=True, pooling_type=getattr(llama_cpp, _POOLING[pooling]), n_ubatch=limit)
            note_engine_start(self.name, "llamacpp")
            t0 = time.time()
            try:
                self._engines[key] = llama_cpp.Llama(str(path), **kwargs)
            except Exception as err:  # noqa: BLE001 - name the model and its file
                raise BackendError(f"model {self.name!r}: llama.cpp could not load {str(path)!r} "
                                   f"(models.{self.name}.path): {type(err).__name__}: {err}") from None
            log.info("loaded %s (%s) with llama.cpp in %.1fs", self.name, path, time.time() - t0)
        return self._engines[key]

    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0, ignore_eos=False):
        llm = self._engine("generate")
        # ignore_eos: the end tokens (end of sequence, end of turn) are never picked
        never = {int(t): -1e9 for t in (llm.token_eos(), llm._model.token_eot()) if t >= 0} if ignore_eos else None
        outs = []
        for prompt in prompts:
            ids = self.encode(prompt)
            sampling = ({"temperature": 0.0} if temperature <= 0 else
                        {"temperature": temperature, "top_p": 1.0, "top_k": 0, "min_p": 0.0})
            res = llm.create_completion(ids, max_tokens=max_new_tokens, seed=seed, repeat_penalty=1.0,
                                        logit_bias=never, **sampling)
            choice, usage = res["choices"][0], res["usage"]
            outs.append(Generation(choice["text"].strip(), choice.get("finish_reason") or "stop", len(ids),
                                   int(usage["completion_tokens"])))
        return outs

    def _next_logprobs(self, llm, ids: list[int]) -> np.ndarray:
        """log p(next token | ids) over the vocabulary: evaluates only what ``ids`` does not share
        with the tokens already in the context's KV cache (at least its last token)."""
        cached = llm.input_ids[:llm.n_tokens]
        same = 0
        for a, b in zip(cached, ids[:-1]):
            if a != b:
                break
            same += 1
        llm.n_tokens = same
        llm.eval(ids[same:])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

    def label_logprobs(self, prompts, options):
        opts = [self.option_ids(o) for o in options]
        steps = option_steps(opts)
        encoded = [self.encode(p) for p in prompts]
        llm = self._engine("generate")
        found: dict[tuple, list[dict[int, float]]] = {prefix: [{} for _ in encoded] for prefix, _ in steps}
        for i, ids in enumerate(encoded):
            for prefix, tokens in steps:  # the prompt alone first, then each option's longer prefixes
                logp = self._next_logprobs(llm, ids + list(prefix))
                found[prefix][i] = {t: float(logp[t]) for t in tokens}
        return option_scores(opts, found, len(encoded))

    def embed(self, texts, *, pooling="last", layer=-1):
        if layer != -1:
            raise BackendError(f"model {self.name!r}: llama.cpp pools the final layer only; "
                               f"use backend transformers for layer={layer}")
        if pooling not in _POOLING:
            raise BackendError(f"unknown pooling {pooling!r} ({', '.join(_POOLING)})")
        encoded = [self.encode(t) for t in texts]
        llm = self._engine("embed", pooling)
        width, room, seqs = llm.n_embd(), llm.n_batch, llm.context_params.n_seq_max
        vectors: list[np.ndarray] = []
        batch: list[list[int]] = []
        for ids in encoded + [None]:  # None: flush the last batch
            if batch and (ids is None or sum(map(len, batch)) + len(ids) > room or len(batch) >= seqs):
                vectors += self._embed_batch(llm, batch, width)
                batch = []
            if ids is not None:
                batch.append(ids)
        return np.asarray(vectors, dtype=np.float32).reshape(len(encoded), -1)

    @staticmethod
    def _embed_batch(llm, batch: list[list[int]], width: int) -> list[np.ndarray]:
        """One llama.cpp decode of several sequences (one sequence id each); their pooled vectors."""
        llm._ctx.kv_cache_clear()
        llm._batch.reset()
        for seq, ids in enumerate(batch):
            llm._batch.add_sequence(ids, seq, True)  # every token an output, as llama.cpp's embedding mode wants
        llm._ctx.decode(llm._batch)
        out = [np.ctypeslib.as_array(llm._ctx.get_embeddings_seq(seq), shape=(width,)).copy()
               for seq in range(len(batch))]
        llm._batch.reset()
        llm._ctx.kv_cache_clear()
        return out

    def start(self):
        self._engine("generate")

    def close(self):
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
