"""The label-scoring method the engines used before issue 14, kept as the reference that the
new method is checked against (tests) and measured against (benchmarks/label_scoring.py).

One full sequence per (prompt, option): prompt + option tokens, scored from the log-probs of
every position (vLLM: ``prompt_logprobs`` over the whole prompt; transformers: a forward pass
of each padded sequence and a log-softmax over the vocabulary at every position). Exact, but
the prompt is computed once per option, and the whole prompt's log-probs are computed.
"""
from __future__ import annotations

import math

import numpy as np


def vllm_sequence_logprobs(backend, prompts, options) -> np.ndarray:
    """explainbench.engines.vllm.VLLMBackend._sequence_logprobs as of commit 0be3981."""
    from vllm import SamplingParams

    opts = [backend.option_ids(o) for o in options]
    seqs = [backend.encode(p) + o for p in prompts for o in opts]
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    outputs = backend._engine("generate").generate([{"prompt_token_ids": s} for s in seqs], params, use_tqdm=False)
    scores = np.zeros(len(seqs))
    for n, (out, seq) in enumerate(zip(outputs, seqs)):
        k = len(opts[n % len(opts)])
        total = 0.0
        for pos in range(len(seq) - k, len(seq)):
            entry = out.prompt_logprobs[pos]
            total += entry[seq[pos]].logprob if entry and seq[pos] in entry else -math.inf
        scores[n] = total
    return scores.reshape(len(prompts), len(opts))


def transformers_sequence_logprobs(backend, prompts, options) -> np.ndarray:
    """explainbench.engines.transformers.TransformersBackend._sequence_logprobs as of commit 0be3981."""
    torch = backend.torch
    opts = [backend.option_ids(o) for o in options]
    pairs = [(i, j, backend.encode(p) + o) for i, p in enumerate(prompts) for j, o in enumerate(opts)]
    scores = np.zeros((len(prompts), len(opts)))
    for batch in backend._batches(pairs):
        ids, mask = backend._pad_left([seq for _, _, seq in batch])
        with torch.no_grad():
            logits = backend.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        for b, (i, j, _) in enumerate(batch):
            k = len(opts[j])
            targets = ids[b, -k:]
            scores[i, j] = logp[b, -k:, :].gather(1, targets[:, None]).sum().item()
    return scores


def sequence_logprobs(backend, prompts, options) -> np.ndarray:
    """The reference method for ``backend``'s engine."""
    if backend.spec["backend"] == "vllm":
        return vllm_sequence_logprobs(backend, prompts, options)
    return transformers_sequence_logprobs(backend, prompts, options)
