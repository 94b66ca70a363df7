"""The one interface every engine implements: :class:`Backend`, :class:`Generation`, prompt encoding.

Stages (explanations, classify, plr) depend on :class:`Backend` only, never on an engine::

    with open_backend(config["models"]["smollm2"], "smollm2") as backend:
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

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ExplainBenchError

Messages = list[dict[str, str]]

DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


class BackendError(ExplainBenchError):
    """An engine could not start or answer; the message names the model."""


_STARTED: list[str] = []


def note_engine_start(name: str, engine: str) -> None:
    """Engines call this when they load a model or send their first request."""
    _STARTED.append(f"{name} ({engine})")


def engines_started() -> list[str]:
    """Every engine this process has started, in order ("smollm2 (vllm)"): how a test shows
    that a bad input stopped a stage before any engine started."""
    return list(_STARTED)


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


def _characters(prompt: Messages | str) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)


def check_model_path(spec: dict, name: str) -> None:
    """A local-looking path that does not exist is an error here, not a hub download."""
    path = spec["path"]
    if Path(path).expanduser().exists():
        return
    hub_id = path.count("/") == 1 and not path.startswith((".", "/", "~", "resources/", "results/"))
    if not hub_id:
        raise BackendError(f"model {name!r}: path {path!r} does not exist (models.{name}.path)")


def option_steps(options: Sequence[Sequence[int]]) -> list[tuple[tuple[int, ...], list[int]]]:
    """The next-token questions that score token sequences exactly, by the chain rule.

    log p(o | prompt) = sum_j log p(o_j | prompt + o_<j); so each distinct proper prefix ``p`` of an
    option asks once for the log-probabilities of the tokens that follow ``p`` in some option.
    Returns ``(prefix, next tokens)`` pairs, the empty prefix (the prompt alone) first::

        option_steps([[5, 7], [9], [5, 8]]) == [((), [5, 9]), ((5,), [7, 8])]
    """
    steps: dict[tuple[int, ...], set[int]] = {(): set()}
    for option in options:
        for j, token in enumerate(option):
            steps.setdefault(tuple(option[:j]), set()).add(token)
    return [(prefix, sorted(tokens)) for prefix, tokens in steps.items()]


def scores_by_steps(encoded: Sequence[Sequence[int]], options: Sequence[Sequence[int]],
                    ask: Callable[[list[tuple[tuple[int, ...], list[int], int]]], Sequence[dict[int, float]]]
                    ) -> np.ndarray:
    """(n_prompts, n_options) exact option scores from next-token questions: ``ask`` gets requests
    ``(prefix, tokens, prompt index)`` and answers, for each, ``{token: log p(token | prompt +
    prefix)}``. The prompts alone are asked first, in one call, so that an engine's prefix cache
    holds them when the later steps (the options' earlier tokens appended) are asked."""
    found: dict[tuple[int, ...], list[dict[int, float]]] = {}
    steps = option_steps(options)
    for batch in (steps[:1], steps[1:]):
        requests = [(prefix, tokens, i) for prefix, tokens in batch for i in range(len(encoded))]
        if not requests:
            continue
        for (prefix, _, i), answer in zip(requests, ask(requests)):
            found.setdefault(prefix, [{} for _ in encoded])[i] = answer
    return option_scores(options, found, len(encoded))


def option_scores(options: Sequence[Sequence[int]], found: dict[tuple[int, ...], list[dict[int, float]]],
                  n_prompts: int) -> np.ndarray:
    """(n_prompts, n_options) sums of the log-probabilities ``found[prefix][prompt][token]``
    that :func:`option_steps` asked for."""
    scores = np.zeros((n_prompts, len(options)))
    for k, option in enumerate(options):
        for j, token in enumerate(option):
            per_prompt = found[tuple(option[:j])]
            scores[:, k] += [per_prompt[i][token] for i in range(n_prompts)]
    return scores


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

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.spec["path"])
            except (OSError, ValueError) as err:
                raise BackendError(f"model {self.name!r}: cannot load a tokenizer from {self.spec['path']!r} "
                                   f"(models.{self.name}.path): {err}") from None
        return self._tokenizer

    def render(self, prompt: Messages | str) -> str:
        """The prompt as the model sees it (chat template applied when configured)."""
        if isinstance(prompt, str):
            return prompt
        if self.spec["chat_template"] and getattr(self.tokenizer, "chat_template", None):
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
        limit = self.spec["max_model_len"]
        if len(ids) >= limit:
            raise BackendError(f"model {self.name!r}: prompt of {len(ids)} tokens does not fit max_model_len={limit} "
                               f"(models.{self.name}.max_model_len); prompt starts {text[:80]!r}")
        return ids

    def check_fits(self, prompts: Sequence[Messages | str], reserve: int, ids: Sequence[str], where: str) -> None:
        """Before the engine starts (the tokenizer alone): the longest prompts (by characters)
        fit ``max_model_len`` with ``reserve`` tokens to spare (new tokens, or the longest answer
        option). A prompt that does not raises BackendError naming the example (``ids``), the
        file it comes from (``where``) and the config key."""
        limit = self.spec["max_model_len"]
        order = sorted(range(len(prompts)), key=lambda i: -_characters(prompts[i]))
        for i in order[:32]:
            try:
                n = len(self.encode(prompts[i]))
            except BackendError:  # encode refuses a prompt of max_model_len tokens or more
                n = len(self.tokenizer(self.render(prompts[i]), add_special_tokens=False)["input_ids"])
            if n + reserve > limit:
                raise BackendError(f"{where}, id {ids[i]!r}: its prompt is {n} tokens, and with {reserve} more "
                                   f"(new tokens or answer) it needs {n + reserve}, but models.{self.name}."
                                   f"max_model_len is {limit} (model {self.name!r}); raise max_model_len or "
                                   "shorten the prompt")

    @property
    def chat_only(self) -> bool:
        """True for a model reached through a chat endpoint only (GPT-4o mini): prompts are chat
        messages, the answer cannot be prefilled, and label scores come from the first answer
        token. False for the local engines, which score any continuation of any prompt."""
        return False

    def answer_reserve(self, options: Sequence[str]) -> int:
        """Tokens a prompt must leave room for to score ``options`` (for :meth:`check_fits`): the
        longest option's; one for a chat-only model, which answers with one token and has no
        tokenizer here."""
        return 1 if self.chat_only else max(len(self.option_ids(o)) for o in options)

    def option_ids(self, option: str) -> list[int]:
        ids = self.tokenizer(option, add_special_tokens=False)["input_ids"]
        if not ids:
            raise BackendError(f"model {self.name!r}: option {option!r} has no tokens")
        return ids

    # -- the interface ------------------------------------------------------------------------
    @abstractmethod
    def generate(self, prompts: Sequence[Messages | str], *, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0, ignore_eos: bool = False) -> list[Generation]:
        """One completion per prompt, in order. ``ignore_eos``: generate exactly ``max_new_tokens``
        tokens, past the end-of-sequence token (speed measurements compare equal work)."""

    @abstractmethod
    def label_logprobs(self, prompts: Sequence[Messages | str], options: Sequence[str]) -> np.ndarray:
        """Log-probability of each option as the continuation of each prompt: shape (n, k)."""

    def embed(self, texts: Sequence[str], *, pooling: str = "last", layer: int = -1) -> np.ndarray:
        raise BackendError(f"model {self.name!r}: backend {self.spec['backend']!r} gives no embeddings")

    def start(self) -> None:
        """Load or start the engine now (engines otherwise start on first use), so that
        timings of later calls leave start-up out."""

    def close(self) -> None:
        """Free the engine (GPU/CPU memory)."""

    # -- a context manager: ``with open_backend(...) as backend:`` closes the engine on exit ---
    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
