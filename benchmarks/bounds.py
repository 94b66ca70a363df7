"""The machine's bound for a model's forward pass, measured in the same run as the rates it bounds.

- ``matmul_gflops()``: what torch's dense float32 matrix product reaches here (square matrices
  the size of a small model's layers, torch's default thread count), in GFLOP/s. Every engine
  path (prefill, decoding, pooling) spends nearly all its time in such products, so this is
  the rate no engine can beat on this machine.
- ``ModelCost``: forward FLOPs of a transformer per token, 2 x (parameters outside the
  embedding tables) + the attention over the context (Kaplan et al. 2020: 2 n_layer n_ctx
  d_attn), plus 2 x d_model x vocab for each row of the LM head an engine computes.

A path's bound is then ``matmul_gflops / FLOPs per item`` items/s; benchmarks report the
measured rate as a percentage of it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass


def matmul_gflops(size: int = 1024, seconds: float = 3.0) -> float:
    """Median float32 GFLOP/s of ``size`` x ``size`` products over about ``seconds``."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    rates = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        rates.append(5 * 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    rates.sort()
    return rates[len(rates) // 2]


@dataclass(frozen=True)
class ModelCost:
    """Forward FLOPs of one model (from its weights and config)."""

    name: str
    body_params: int   # parameters outside the embedding tables
    n_layers: int
    d_model: int
    vocab: int

    @classmethod
    def of(cls, path: str, causal: bool = True) -> "ModelCost":
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path)
        model = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(path, dtype=torch.float32)
        embedding = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
        body = sum(p.numel() for p in model.parameters() if id(p) not in embedding)
        if causal and id(model.get_output_embeddings().weight) not in embedding:
            body -= model.get_output_embeddings().weight.numel()  # an untied LM head is counted per row below
        return cls(str(path).rstrip("/").split("/")[-1], int(body), config.num_hidden_layers, config.hidden_size,
                   config.vocab_size)

    def token_flops(self, context: float) -> float:
        """One token through the body, attending over ``context`` earlier tokens."""
        return 2 * self.body_params + 2 * self.n_layers * context * self.d_model

    def sequence_flops(self, tokens: int, lm_head_rows: int = 0, past: int = 0) -> float:
        """``tokens`` new tokens after ``past`` cached ones (causal: the i-th sees past + i), plus
        ``lm_head_rows`` rows of logits over the vocabulary."""
        mean_context = past + (tokens + 1) / 2
        return tokens * self.token_flops(mean_context) + lm_head_rows * 2 * self.d_model * self.vocab


def load_line() -> str:
    """The 1-minute load average and the CPU count, to say how busy the machine was."""
    import os

    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
