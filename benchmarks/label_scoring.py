"""Label scoring, pairs/s: the engines' label_logprobs against the method they used before, side by side.

The same real e-SNLI zero-shot prompts (rule zeroshot's template, condition none) and the same
answer options (" entailment" is two tokens with SmolLM2's tokenizer, " neutral" and
" contradiction" one each), scored by each engine two ways:

- before: one full sequence per (prompt, option), scored from the log-probs of every position
  (vLLM ``prompt_logprobs``; transformers a log-softmax at every position): the reference in
  ``tests/support/reference_scoring.py``;
- now: ``Backend.label_logprobs``: the prompt once (vLLM: one next-token request with
  ``logprob_token_ids``, then prompt + earlier option tokens on the prefix cache; transformers:
  one forward pass and its KV cache reused for the options).

vLLM's prefix cache is emptied before every timed call, so no call reuses an earlier one's
prompts. The bound is measured in the same run: torch's matmul GFLOP/s over the forward FLOPs
of the least work that scores a pair (each prompt token once, each later option token once,
one LM-head row per next-token question); see ``benchmarks/bounds.py``. Results go to
``benchmarks/results/label_scoring.json``.

    python benchmarks/label_scoring.py --n 120 --engines vllm transformers
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]
LABELS = ["entailment", "neutral", "contradiction"]


def zeroshot_prompts(backend, data: str, n: int, seed: int = 0):
    """Rule zeroshot's prompts (condition none) for n real e-SNLI pairs, and its answer options."""
    from explainbench.classify.conditions import attach_explanations
    from explainbench.classify.zeroshot import answer_options, build_prompts, verbalizers
    from explainbench.data import load_records
    from explainbench.prompts import load_template
    from explainbench.splits import sample_per_class

    records = sample_per_class(load_records(data, format="esnli", labels=LABELS), -(-n // 3), seed)[:n]
    template = load_template(ROOT / "config" / "prompts", "classify", "esnli", "nli")
    words = verbalizers(LABELS, None)
    prompts = build_prompts(backend, attach_explanations(records, "none"), template, words, with_explanation=False)
    return prompts, answer_options(template, words)


def least_flops(backend, cost, prompts, options) -> float:
    """Forward FLOPs of scoring every pair with the least work: see the module docstring."""
    from explainbench.engines.base import option_steps

    steps = option_steps([backend.option_ids(o) for o in options])
    total = 0.0
    for prompt in prompts:
        n = len(backend.encode(prompt))
        total += cost.sequence_flops(n, lm_head_rows=1)
        total += sum(cost.sequence_flops(1, lm_head_rows=1, past=n + len(prefix) - 1) for prefix, _ in steps[1:])
    return total


def timed(backend, method, prompts, options):
    if backend.spec["backend"] == "vllm":
        backend._engine("generate").reset_prefix_cache()  # a cold cache: no reuse of an earlier call
    t0 = time.perf_counter()
    scores = method(backend, prompts, options)
    return time.perf_counter() - t0, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "SmolLM2-135M-Instruct"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "esnli" / "dev.jsonl"))
    parser.add_argument("--n", type=int, default=120, help="e-SNLI pairs (prompts)")
    parser.add_argument("--engines", nargs="+", default=["vllm", "transformers"])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls of each method (best is kept)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "label_scoring.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np

    from bounds import ModelCost, load_line, matmul_gflops
    from conftest import causal_spec
    from explainbench.engines import open_backend
    from support.reference_scoring import sequence_logprobs

    def new(backend, prompts, options):
        return backend.label_logprobs(prompts, options)

    cost = ModelCost.of(args.model)
    gflops = [matmul_gflops()]
    rows = []
    for engine in args.engines:
        with open_backend(causal_spec(Path(args.model), backend=engine), "smollm2") as backend:
            prompts, options = zeroshot_prompts(backend, args.data, args.n)
            warm, _ = zeroshot_prompts(backend, args.data, 6, seed=1)
            t0 = time.perf_counter()
            backend.label_logprobs(warm, options)  # start the engine, warm up
            startup = time.perf_counter() - t0
            best, scores = {}, {}
            for _ in range(args.repeats):
                for name, method in (("before", sequence_logprobs), ("now", new)):
                    seconds, scores[name] = timed(backend, method, prompts, options)
                    best[name] = min(best.get(name, seconds), seconds)
            bound_gflops = float(np.mean(gflops + [matmul_gflops()]))
            bound = bound_gflops * 1e9 * len(prompts) / least_flops(backend, cost, prompts, options)
            tokens = np.mean([len(backend.encode(p)) for p in prompts])
        row = {"engine": engine, "pairs": len(prompts), "prompt_tokens_mean": round(float(tokens), 1),
               "before_pairs_per_s": round(len(prompts) / best["before"], 2),
               "now_pairs_per_s": round(len(prompts) / best["now"], 2),
               "ratio_now_over_before": round(best["before"] / best["now"], 2),
               "bound_pairs_per_s": round(bound, 2),
               "now_pct_of_bound": round(100 * len(prompts) / best["now"] / bound, 1),
               "before_pct_of_bound": round(100 * len(prompts) / best["before"] / bound, 1),
               "max_abs_difference": float(np.abs(scores["now"] - scores["before"]).max()),
               "startup_s": round(startup, 1)}
        rows.append(row)
        gflops.append(bound_gflops)
    result = {"rows": rows, "matmul_gflops": round(float(np.mean(gflops)), 1), "model": args.model,
              "flops_per_token_body": cost.token_flops(0), "options": options,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {load_line()}",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nlabel scoring: {args.n} e-SNLI zero-shot prompts, options {options} ({result['machine']}); "
          f"matmul {result['matmul_gflops']} GFLOP/s")
    print(f"{'engine':<14}{'before/s':>9}{'now/s':>8}{'ratio':>7}{'bound/s':>9}{'now %':>7}{'before %':>9}{'max |diff|':>12}")
    for r in rows:
        print(f"{r['engine']:<14}{r['before_pairs_per_s']:>9.2f}{r['now_pairs_per_s']:>8.2f}"
              f"{r['ratio_now_over_before']:>6.2f}x{r['bound_pairs_per_s']:>9.2f}{r['now_pct_of_bound']:>7.1f}"
              f"{r['before_pct_of_bound']:>9.1f}{r['max_abs_difference']:>12.2e}")
    print(f"written to {out}")


if __name__ == "__main__":  # vLLM may start its engine in a spawned process
    main()
