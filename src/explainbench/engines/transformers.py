"""transformers models as a :class:`~explainbench.engines.base.Backend`: batched ``generate``,
forward-pass log-probabilities, hidden-state embeddings. Runs on CUDA when available, else CPU."""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from .base import DTYPES, Backend, BackendError, Generation, check_model_path, note_engine_start

log = logging.getLogger(__name__)


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
            dtype = self.spec["dtype"]
            kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype) if dtype in DTYPES else
                                      (torch.float32 if self.device == "cpu" else "auto")}
            quant = self.spec["quantization"]
            if quant in ("bitsandbytes-4bit", "bitsandbytes-8bit", "bitsandbytes"):
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=quant != "bitsandbytes-8bit",
                                                                   load_in_8bit=quant == "bitsandbytes-8bit")
            elif quant:
                raise BackendError(f"model {self.name!r}: quantization {quant!r} is not available with transformers "
                                   "(use bitsandbytes-4bit / bitsandbytes-8bit, or the vllm backend)")
            cls = AutoModelForCausalLM if self.spec["kind"] == "causal" else AutoModel
            note_engine_start(self.name, "transformers")
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
        size = size or self.spec["batch_size"]
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
        causal = self.spec["kind"] == "causal"
        vectors = []
        for batch in self._batches(list(texts)):
            if causal:
                ids, mask = self._pad_left([self.encode(t) for t in batch])
            else:
                enc = self.tokenizer(list(batch), padding=True, truncation=True,
                                     max_length=self.spec["max_model_len"], return_tensors="pt")
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

