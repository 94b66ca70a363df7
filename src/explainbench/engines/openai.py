"""An OpenAI-compatible HTTP server as a :class:`~explainbench.engines.base.Backend`.

Works with OpenAI (GPT-4o mini) and with any ``vllm serve``. A model entry::

    gpt-4o-mini:
      path: gpt-4o-mini                  # the model name the server knows
      backend: openai
      api_base: https://api.openai.com/v1
      api_key_env: OPENAI_API_KEY        # the NAME of the variable; the key is never logged or written
      max_concurrency: 8                 # requests in flight at once
      timeout_s: 120                     # per request
      max_retries: 6                     # on 429, 5xx and connection errors, with exponential backoff

- ``generate``: chat completions (the server applies the chat template) for chat prompts
  when ``chat_template`` is true; the completions endpoint for plain-string prompts or
  when ``chat_template`` is false (messages joined by blank lines). A chat-only model (see
  below) gets a plain string as one user message, never on the completions endpoint.
- ``label_logprobs``: exact, when ``path`` is a local folder (a ``vllm serve`` of it): the
  prompt and option token ids go to the completions endpoint with ``echo`` and
  ``logprobs``, and the option tokens' log-probabilities are summed, as the offline engines
  do. Otherwise (GPT-4o mini, no tokenizer here: a *chat-only* model, :attr:`chat_only`):
  one answer token is requested from ``/chat/completions`` with ``logprobs`` and
  ``top_logprobs`` (20), and each option gets the probability mass of the listed tokens that
  begin it (case and surrounding whitespace ignored; a token that begins several options is
  left out). An option none of the listed tokens begins gets ``-inf``. OpenAI's chat models
  reject ``/completions``, so a chat-only model never calls it.
- ``embed``: the ``/embeddings`` endpoint (the server decides the pooling).
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Backend, BackendError, Generation

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
TOP_LOGPROBS = 20
EMBED_BATCH = 64  # texts per request


class OpenAIBackend(Backend):
    """Chat/completions/embeddings over HTTP, with bounded concurrency, retries and timeouts."""

    backoff_s = 1.0       # first retry wait; doubles each time (with jitter), capped at backoff_max_s
    backoff_max_s = 60.0

    def __init__(self, spec: dict, name: str = "model"):
        super().__init__(spec, name)
        import httpx

        base = spec["api_base"]
        if not base:
            raise BackendError(f"model {name!r}: backend openai needs api_base (models.{name}.api_base)")
        self.api_base = base.rstrip("/")
        self.model_id = spec["path"]
        self.max_concurrency = spec["max_concurrency"]
        self.timeout_s = float(spec["timeout_s"])
        self.max_retries = spec["max_retries"]
        key_env = spec["api_key_env"]
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        else:
            log.info("model %s: environment variable %s is not set; sending requests without an API key",
                     name, key_env)
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout_s),
                                    limits=httpx.Limits(max_connections=self.max_concurrency,
                                                        max_keepalive_connections=self.max_concurrency))
        self._httpx = httpx
        self._lock = threading.Lock()
        self.requests_sent = 0   # every HTTP attempt, retries included
        self.retries = 0
        self._exact_logprobs: bool | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(name={self.name!r}, model={self.model_id!r}, api_base={self.api_base!r})"

    # -- HTTP ---------------------------------------------------------------------------------
    def _post(self, route: str, payload: dict) -> dict:
        """POST with retries on 429/5xx/connection errors; errors name the model, never the key."""
        url = f"{self.api_base}/{route}"
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.requests_sent += 1
            problem, wait = None, None
            try:
                resp = self._client.post(url, content=json.dumps(payload))
            except self._httpx.TransportError as err:  # connect/read errors and timeouts
                problem = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code < 300:
                    try:
                        return resp.json()
                    except ValueError:
                        raise BackendError(f"model {self.name!r}: {url} answered with non-JSON: "
                                           f"{resp.text[:200]!r}") from None
                detail = _error_detail(resp)
                if resp.status_code not in RETRY_STATUS:
                    raise BackendError(f"model {self.name!r}: {url} answered HTTP {resp.status_code}: {detail}")
                problem = f"HTTP {resp.status_code}: {detail}"
                wait = _retry_after(resp)
            if attempt == self.max_retries:
                raise BackendError(f"model {self.name!r}: {url} failed after {attempt + 1} attempt(s): {problem}")
            if wait is None:
                wait = min(self.backoff_max_s, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)
            with self._lock:
                self.retries += 1
            log.warning("model %s: %s (attempt %d of %d); retrying in %.2fs", self.name, problem, attempt + 1,
                        self.max_retries + 1, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _map(self, fn, items: Sequence) -> list:
        """``fn`` over ``items`` with at most ``max_concurrency`` requests in flight; order kept."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- prompts ------------------------------------------------------------------------------
    @property
    def chat_only(self) -> bool:
        """A chat model served without its tokenizer here (GPT-4o mini): ``chat_template`` true and
        ``path`` no local folder. Everything goes to ``/chat/completions``."""
        return bool(self.spec["chat_template"]) and self._local_tokenizer() is None

    def _chat(self, prompt) -> bool:
        return bool(self.spec["chat_template"]) and (not isinstance(prompt, str) or self.chat_only)

    @staticmethod
    def _messages(prompt) -> list[dict]:
        return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)

    def render(self, prompt) -> str:
        """Plain text for the completions endpoint (chat prompts are templated by the server)."""
        if isinstance(prompt, str):
            return prompt
        if self.spec["chat_template"] and self._local_tokenizer() is not None:
            return super().render(prompt)
        return "\n\n".join(m["content"] for m in prompt) + "\n"

    def _local_tokenizer(self):
        """The model's tokenizer when ``path`` is a local folder (a vllm serve of it), else None."""
        if not Path(self.model_id).expanduser().is_dir():
            return None
        return self.tokenizer

    # -- the interface ------------------------------------------------------------------------
    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0):
        def one(prompt) -> Generation:
            common = {"model": self.model_id, "max_tokens": max_new_tokens, "temperature": temperature,
                      "seed": seed, "n": 1}
            if self._chat(prompt):
                data = self._post("chat/completions", dict(common, messages=self._messages(prompt)))
                choice = data["choices"][0]
                text = (choice.get("message") or {}).get("content") or ""
            else:
                data = self._post("completions", dict(common, prompt=self.render(prompt)))
                choice = data["choices"][0]
                text = choice.get("text") or ""
            usage = data.get("usage") or {}
            return Generation(text.strip(), choice.get("finish_reason") or "stop", int(usage.get("prompt_tokens", 0)),
                              int(usage.get("completion_tokens", 0)))

        return self._map(one, list(prompts))

    def label_logprobs(self, prompts, options):
        prompts, options = list(prompts), list(options)
        if self._exact_logprobs is None:
            self._exact_logprobs = self._local_tokenizer() is not None
            log.info("model %s: label log-probabilities %s", self.name,
                     "exact (echo + logprobs on the completions endpoint)" if self._exact_logprobs
                     else f"from the top {TOP_LOGPROBS} log-probabilities of the first answer token "
                          f"({'/chat/completions' if self.spec['chat_template'] else '/completions'})")
        if self._exact_logprobs:
            return self._echo_logprobs(prompts, options)
        return self._top_logprobs(prompts, options)

    def _echo_logprobs(self, prompts, options) -> np.ndarray:
        opts = [self.option_ids(o) for o in options]
        seqs = [(self.encode(p) + o, len(o)) for p in prompts for o in opts]

        def one(item) -> float:
            seq, k = item
            data = self._post("completions", {"model": self.model_id, "prompt": seq, "max_tokens": 1, "echo": True,
                                              "logprobs": 0, "temperature": 0.0})
            values = ((data["choices"][0].get("logprobs") or {}).get("token_logprobs")) or []
            if len(values) < len(seq):
                raise BackendError(f"model {self.name!r}: the server echoed {len(values)} log-probabilities for a "
                                   f"{len(seq)}-token prompt (does it support echo with logprobs?)")
            return float(sum(-math.inf if v is None else v for v in values[len(seq) - k:len(seq)]))

        return np.asarray(self._map(one, seqs), dtype=float).reshape(len(prompts), len(options))

    def _top_logprobs(self, prompts, options) -> np.ndarray:
        keys = [o.strip().lower() for o in options]

        def one(prompt) -> list[float]:
            common = {"model": self.model_id, "max_tokens": 1, "temperature": 0.0}
            if self._chat(prompt):
                data = self._post("chat/completions", dict(common, messages=self._messages(prompt), logprobs=True,
                                                           top_logprobs=TOP_LOGPROBS))
                content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
                top = {e["token"]: e["logprob"] for e in (content[0].get("top_logprobs") or [])} if content else {}
            else:
                data = self._post("completions", dict(common, prompt=self.render(prompt), logprobs=TOP_LOGPROBS))
                tops = ((data["choices"][0].get("logprobs") or {}).get("top_logprobs")) or []
                top = dict(tops[0]) if tops else {}
            if not top:
                raise BackendError(f"model {self.name!r}: the server returned no top log-probabilities")
            return option_scores_from_top(top, keys)

        return np.asarray(self._map(one, prompts), dtype=float)

    def embed(self, texts, *, pooling="last", layer=-1):
        if layer != -1:
            raise BackendError(f"model {self.name!r}: an embeddings endpoint gives its final output only, "
                               f"not layer={layer}")
        texts = list(texts)
        batches = [texts[i:i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]

        def one(batch) -> list[list[float]]:
            data = self._post("embeddings", {"model": self.model_id, "input": batch})
            rows = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
            if len(rows) != len(batch):
                raise BackendError(f"model {self.name!r}: {len(rows)} embeddings for {len(batch)} texts")
            return [r["embedding"] for r in rows]

        vectors = [v for part in self._map(one, batches) for v in part]
        return np.asarray(vectors, dtype=np.float32) if vectors else np.zeros((0, 0), np.float32)

    def close(self):
        self._client.close()


def option_scores_from_top(top: dict[str, float], keys: Sequence[str]) -> list[float]:
    """Per option (lower-cased, stripped), the log of the summed probability of the listed
    tokens that begin it and no other option; ``-inf`` when no listed token does."""
    mass = [0.0] * len(keys)
    for token, logprob in top.items():
        t = token.strip().lower()
        if not t:
            continue
        hits = [j for j, key in enumerate(keys) if key.startswith(t)]
        if len(hits) == 1:
            mass[hits[0]] += math.exp(logprob)
    return [math.log(m) if m > 0 else -math.inf for m in mass]


def _retry_after(resp) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return min(float(value), 120.0) if value is not None else None
    except ValueError:
        return None


def _error_detail(resp) -> str:
    try:
        body: Any = resp.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"].get("message", body)
        elif isinstance(body, dict) and "message" in body:
            body = body["message"]
        text = body if isinstance(body, str) else json.dumps(body)
    except ValueError:
        text = resp.text
    return text[:300]
