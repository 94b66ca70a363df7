"""transformers models as a :class:`~explainbench.engines.base.Backend`: batched ``generate``,
forward-pass log-probabilities, hidden-state embeddings. Runs on CUDA when available, else CPU."""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from ..config import quant_type_problem
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
            problem = quant_type_problem(self.name, self.spec["quantization"], "transformers")
            if problem:  # the config check says so first; a spec built by hand gets here
                raise BackendError(problem)
            cls = AutoModelForCausalLM if self.spec["kind"] == "causal" else AutoModel
            note_engine_start(self.name, "transformers")
            t0 = time.time()
            try:
                model = cls.from_pretrained(self.spec["path"], **kwargs)
            except OSError as err:
                raise BackendError(f"model {self.name!r}: cannot load {self.spec['path']!r}: {err}") from None
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

    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0, ignore_eos=False):
        torch = self.torch
        eos = None if ignore_eos else self.tokenizer.eos_token_id
        outs: list[Generation] = []
        for batch in self._batches(list(prompts)):
            encoded = [self.encode(p) for p in batch]
            ids, mask = self._pad_left(encoded)
            torch.manual_seed(seed)
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens,
                                      "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id}
            if ignore_eos:
                kwargs["min_new_tokens"] = max_new_tokens
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
        """Exact option log-probabilities: one forward pass of each batch of prompts gives every
        option's first token; the options' later tokens are one more pass over the option tokens
        alone, on the prompts' KV cache (each prompt's cache repeated once per longer option)."""
        torch = self.torch
        opts = [self.option_ids(o) for o in options]
        longer = [k for k, o in enumerate(opts) if len(o) > 1]
        firsts = torch.tensor([o[0] for o in opts], device=self.device)
        scores = []
        for batch in self._batches(list(prompts)):
            ids, mask = self._pad_left([self.encode(p) for p in batch])
            with torch.no_grad():
                out = self.model(input_ids=ids, attention_mask=mask, use_cache=bool(longer))
                part = torch.log_softmax(out.logits[:, -1].float(), dim=-1)[:, firsts]
                if longer:
                    part[:, longer] += self._continuation_logprobs(out.past_key_values, mask, [opts[k] for k in longer])
            scores.append(part.cpu().numpy())
        return np.concatenate(scores).astype(float) if scores else np.zeros((0, len(opts)))

    def _continuation_logprobs(self, cache, mask, opts: list[list[int]]):
        """(batch, len(opts)): log p(o_1.. | prompt + o_0) for options of two or more tokens, from the
        prompts' ``cache``: rows are (prompt, option) pairs; options are right-padded, and since
        a token attends only to earlier ones, the padding never changes a real token's score."""
        torch = self.torch
        n, k = mask.shape[0], len(opts)
        width = max(len(o) for o in opts) - 1
        feed = torch.zeros((k, width), dtype=torch.long, device=self.device)
        tail_mask = torch.zeros((k, width), dtype=torch.long, device=self.device)
        for j, o in enumerate(opts):
            feed[j, :len(o) - 1] = torch.tensor(o[:-1])
            tail_mask[j, :len(o) - 1] = 1
        cache.reorder_cache(torch.arange(n, device=self.device).repeat_interleave(k))  # row b*k + j: prompt b, option j
        logits = self.model(input_ids=feed.repeat(n, 1), past_key_values=cache, use_cache=True,
                            attention_mask=torch.cat([mask.repeat_interleave(k, 0), tail_mask.repeat(n, 1)], 1)).logits
        logp = torch.log_softmax(logits.float(), dim=-1).view(n, k, width, -1)
        out = torch.zeros((n, k), device=self.device)
        for j, o in enumerate(opts):
            later = torch.tensor(o[1:], device=self.device)
            out[:, j] = logp[:, j, torch.arange(len(o) - 1), later].sum(-1)
        return out

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

