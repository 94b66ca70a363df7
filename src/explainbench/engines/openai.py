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
  do. A server that rule ``serve_llm`` started (:mod:`~explainbench.engines.serve`,
  ``label_scoring = "steps"``) is asked next-token questions instead, as the offline vLLM
  engine asks them: ``logprob_token_ids`` for the tokens that can follow the prompt (and each
  option's earlier tokens), no log-probabilities over the prompt. Otherwise (GPT-4o mini, no
  tokenizer here: a *chat-only* model, :attr:`chat_only`):
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
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .base import Backend, BackendError, Generation, note_engine_start, scores_by_steps

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
        self._cancel = threading.Event()  # set when one request of a batch has failed for good
        self.requests_sent = 0   # every HTTP attempt, retries included
        self.retries = 0
        self._exact_logprobs: bool | None = None
        self.label_scoring: str | None = None  # "steps": a vLLM server's logprob_token_ids (engines.serve)

    def __repr__(self) -> str:
        return f"OpenAIBackend(name={self.name!r}, model={self.model_id!r}, api_base={self.api_base!r})"

    # -- HTTP ---------------------------------------------------------------------------------
    def _post(self, route: str, payload: dict, read: Callable[[Any], Any] = lambda data: data) -> Any:
        """POST and ``read`` the JSON answer, with retries on 429/5xx, timeouts, connection errors
        and a 200 whose body is not JSON or not of the expected shape (``read`` raising KeyError,
        IndexError, TypeError or :class:`MalformedAnswer`). ``timeout_s`` is a deadline for one
        whole attempt. Errors name the model, the URL and what was wrong, never the key. Once
        another request of the same batch has failed for good, no attempt is started or retried."""
        url = f"{self.api_base}/{route}"
        body = json.dumps(payload)
        for attempt in range(self.max_retries + 1):
            self._check_not_cancelled(url)
            with self._lock:
                self.requests_sent += 1
                if self.requests_sent == 1:
                    note_engine_start(self.name, "openai")
            problem, wait = None, None
            try:
                status, text, headers = self._send(url, body)
            except self._httpx.TransportError as err:  # connect/read errors and timeouts
                problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            except _Deadline as err:
                problem = str(err)
            else:
                if status < 300:
                    try:
                        return read(json.loads(text))
                    except ValueError as err:
                        problem = f"HTTP {status} with a body that is not JSON ({err}): {text[:200]!r}"
                    except (KeyError, IndexError, TypeError, MalformedAnswer) as err:
                        problem = (f"HTTP {status} with a body of the wrong shape ({type(err).__name__}: {err}): "
                                   f"{text[:200]!r}")
                else:
                    detail = _error_detail(text)
                    if status not in RETRY_STATUS:
                        raise BackendError(f"model {self.name!r}: {url} answered HTTP {status}: {detail}")
                    problem = f"HTTP {status}: {detail}"
                    wait = _retry_after(headers)
            if attempt == self.max_retries:
                raise BackendError(f"model {self.name!r} ({self.model_id!r}): {url} failed after {attempt + 1} "
                                   f"attempt(s): {problem}")
            if wait is None:
                wait = min(self.backoff_max_s, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)
            with self._lock:
                self.retries += 1
            log.warning("model %s: %s: %s (attempt %d of %d); retrying in %.2fs", self.name, url, problem,
                        attempt + 1, self.max_retries + 1, wait)
            if self._cancel.wait(wait):
                self._check_not_cancelled(url)
        raise AssertionError("unreachable")

    def _send(self, url: str, body: str) -> tuple[int, str, Any]:
        """One attempt: (status, body text, headers), the whole answer within ``timeout_s`` (a
        server that trickles its answer is cut off at the deadline, give or take one pause
        between its bytes: httpx's own timeout bounds each read)."""
        deadline = time.monotonic() + self.timeout_s
        chunks = []
        with self._client.stream("POST", url, content=body) as resp:
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _Deadline(f"no complete answer within timeout_s={self.timeout_s:g}s "
                                    f"({sum(map(len, chunks))} bytes so far)")
            return resp.status_code, b"".join(chunks).decode("utf-8", errors="replace"), resp.headers

    def _check_not_cancelled(self, url: str) -> None:
        if self._cancel.is_set():
            raise _Cancelled(f"model {self.name!r}: {url}: not sent, another request of the batch failed for good")

    def _map(self, fn, items: Sequence) -> list:
        """``fn`` over ``items`` with at most ``max_concurrency`` requests in flight; order kept.
        When one item fails for good, the items not started are dropped and the others in flight
        stop retrying; the first failure is raised."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        self._cancel.clear()
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items)))
        futures = [pool.submit(fn, x) for x in items]
        try:
            wait_for(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and not f.cancelled() and f.exception()), None)
            if failed is not None:
                self._cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                first = failed.exception()
                errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
                stopped = sum(isinstance(e, _Cancelled) for e in errors) + sum(f.cancelled() for f in futures)
                if stopped:
                    log.warning("model %s: %d other request(s) of the batch stopped after a failure", self.name,
                                stopped)
                raise first
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._cancel.clear()

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

    def check_fits(self, prompts, reserve, ids, where):
        """As :meth:`Backend.check_fits` when ``path`` is a local folder; otherwise the server's
        tokenizer is unknown here and the server itself refuses a prompt too long."""
        if self._local_tokenizer() is not None:
            super().check_fits(prompts, reserve, ids, where)

    # -- the interface ------------------------------------------------------------------------
    def generate(self, prompts, *, max_new_tokens=64, temperature=0.0, seed=0, ignore_eos=False):
        def one(prompt) -> Generation:
            common = {"model": self.model_id, "max_tokens": max_new_tokens, "temperature": temperature,
                      "seed": seed, "n": 1}
            if ignore_eos:  # vLLM's server reads it; a server without it refuses the request, naming it
                common["ignore_eos"] = True
            if self._chat(prompt):
                return self._post("chat/completions", dict(common, messages=self._messages(prompt)), _read_chat)
            return self._post("completions", dict(common, prompt=self.render(prompt)), _read_completion)

        return self._map(one, list(prompts))

    def label_logprobs(self, prompts, options):
        prompts, options = list(prompts), list(options)
        if self.label_scoring == "steps":
            return self._step_logprobs(prompts, options)
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

            def read(data) -> list:
                values = data["choices"][0]["logprobs"]["token_logprobs"]
                if not isinstance(values, list):
                    raise MalformedAnswer(f"token_logprobs is {type(values).__name__}, not a list")
                return values

            values = self._post("completions", {"model": self.model_id, "prompt": seq, "max_tokens": 1, "echo": True,
                                                "logprobs": 0, "temperature": 0.0}, read)
            if len(values) < len(seq):
                raise BackendError(f"model {self.name!r}: the server echoed {len(values)} log-probabilities for a "
                                   f"{len(seq)}-token prompt (does it support echo with logprobs?)")
            return float(sum(-math.inf if v is None else v for v in values[len(seq) - k:len(seq)]))

        return np.asarray(self._map(one, seqs), dtype=float).reshape(len(prompts), len(options))

    def _step_logprobs(self, prompts, options) -> np.ndarray:
        """Exact option scores from next-token requests (:func:`~explainbench.engines.base.scores_by_steps`),
        the prompts alone first so that the server's prefix cache holds them for the later steps."""
        encoded = [self.encode(p) for p in prompts]

        def one(item) -> dict[int, float]:
            prefix, tokens, i = item

            def read(data) -> dict[int, float]:
                top = data["choices"][0]["logprobs"]["top_logprobs"][0]
                return {int(key.rsplit(":", 1)[1]): float(value) for key, value in top.items()}

            got = self._post("completions", {"model": self.model_id, "prompt": encoded[i] + list(prefix),
                                             "max_tokens": 1, "temperature": 0.0, "logprobs": 1,
                                             "logprob_token_ids": tokens, "return_tokens_as_token_ids": True}, read)
            missing = set(tokens) - set(got)
            if missing:
                raise MalformedAnswer(f"no log-probability for token(s) {sorted(missing)}")
            return {t: (-math.inf if got[t] <= -9999.0 else got[t]) for t in tokens}  # vLLM sends -inf as -9999

        return scores_by_steps(encoded, [self.option_ids(o) for o in options], lambda asked: self._map(one, asked))

    def _top_logprobs(self, prompts, options) -> np.ndarray:
        keys = [o.strip().lower() for o in options]

        def one(prompt) -> list[float]:
            common = {"model": self.model_id, "max_tokens": 1, "temperature": 0.0}
            if self._chat(prompt):
                top = self._post("chat/completions", dict(common, messages=self._messages(prompt), logprobs=True,
                                                          top_logprobs=TOP_LOGPROBS), _read_chat_top)
            else:
                top = self._post("completions", dict(common, prompt=self.render(prompt), logprobs=TOP_LOGPROBS),
                                 _read_completion_top)
            return option_scores_from_top(top, keys)

        return np.asarray(self._map(one, prompts), dtype=float)

    def embed(self, texts, *, pooling="last", layer=-1):
        if layer != -1:
            raise BackendError(f"model {self.name!r}: an embeddings endpoint gives its final output only, "
                               f"not layer={layer}")
        texts = list(texts)
        batches = [texts[i:i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]

        def one(batch) -> list[list[float]]:
            def read(data) -> list[list[float]]:
                rows = sorted(data["data"], key=lambda d: d.get("index", 0))
                if len(rows) != len(batch):
                    raise MalformedAnswer(f"{len(rows)} embeddings for {len(batch)} texts")
                return [[float(x) for x in r["embedding"]] for r in rows]

            return self._post("embeddings", {"model": self.model_id, "input": batch}, read)

        vectors = [v for part in self._map(one, batches) for v in part]
        return np.asarray(vectors, dtype=np.float32) if vectors else np.zeros((0, 0), np.float32)

    def close(self):
        self._client.close()


# Readers of a 200 answer's JSON: what a request needs from it, or KeyError / IndexError /
# TypeError / MalformedAnswer when it is not there (the request is then retried).
def _usage(data: dict) -> tuple[int, int]:
    usage = data.get("usage") or {}
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


def _read_chat(data: dict) -> Generation:
    choice = data["choices"][0]
    text = choice["message"]["content"] or ""
    if not isinstance(text, str):
        raise MalformedAnswer(f"message content is {type(text).__name__}, not text")
    return Generation(text.strip(), choice.get("finish_reason") or "stop", *_usage(data))


def _read_completion(data: dict) -> Generation:
    choice = data["choices"][0]
    text = choice["text"] or ""
    if not isinstance(text, str):
        raise MalformedAnswer(f"text is {type(text).__name__}, not text")
    return Generation(text.strip(), choice.get("finish_reason") or "stop", *_usage(data))


def _read_chat_top(data: dict) -> dict[str, float]:
    content = data["choices"][0]["logprobs"]["content"]
    top = {e["token"]: float(e["logprob"]) for e in (content[0]["top_logprobs"] or [])} if content else {}
    if not top:
        raise MalformedAnswer("no top log-probabilities")
    return top


def _read_completion_top(data: dict) -> dict[str, float]:
    tops = data["choices"][0]["logprobs"]["top_logprobs"]
    top = {str(k): float(v) for k, v in dict(tops[0]).items()} if tops else {}
    if not top:
        raise MalformedAnswer("no top log-probabilities")
    return top


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


class MalformedAnswer(BackendError):
    """A 200 answer without what the request asks for (retried like a 5xx)."""


class _Deadline(Exception):
    """An attempt ran past timeout_s."""


class _Cancelled(BackendError):
    """An attempt not made because another request of the batch failed for good."""


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return min(float(value), 120.0) if value is not None else None
    except ValueError:
        return None


def _error_detail(text: str) -> str:
    try:
        body: Any = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"].get("message", body)
        elif isinstance(body, dict) and "message" in body:
            body = body["message"]
        text = body if isinstance(body, str) else json.dumps(body)
    except ValueError:
        pass
    return text[:300]
