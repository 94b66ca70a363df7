"""Few-shot explanations per second: one fixed set of demonstrations versus a draw per example.

With ``explain.demonstrations: fixed`` every prompt of a dataset starts with the same system
prompt, instruction and demonstrations, so vLLM's prefix caching computes that prefix once and
each prompt costs only its own pair and answer; with ``per_example`` every prompt has its own
demonstrations and nothing is shared. One vLLM engine (prefix caching on, as the pipeline runs
it) explains the same real e-SNLI pairs both ways, greedy, one after the other, in the same
process, and the ratio is reported. Results go to ``benchmarks/results/demonstrations.json``.

    python benchmarks/demonstrations.py --n 96 --shots 2 --max-new-tokens 32
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["entailment", "neutral", "contradiction"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "SmolLM2-135M-Instruct"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "esnli" / "dev.jsonl"))
    parser.add_argument("--n", type=int, default=96, help="examples to explain")
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=32, help="vLLM KV-cache block size (prefix-cache unit)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demonstrations.json"))
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from explainbench.config import model_entry
    from explainbench.data import load_records
    from explainbench.engines import open_backend
    from explainbench.explanations.generate import ExplainSettings, Prompting, build_prompts
    from explainbench.prompts import load_template
    from explainbench.splits import place_examples

    records = load_records(args.data, format="esnli", labels=LABELS)[:600]
    # one fold: the test split holds the pairs to explain; the demonstrations come from train
    placed = place_examples(records, {"dev": 0.0, "test": 0.3, "seed": 0, "folds": None}, args.shots)
    targets = [e for e in placed if e["test_fold"] == 0][:args.n]
    template = load_template(ROOT / "config" / "prompts", "explain", "esnli", "nli")
    prompting = Prompting(template, placed, LABELS)
    prompts = {}
    for mode in ("per_example", "fixed"):
        settings = ExplainSettings(shots=args.shots, seed=0, demonstrations=mode, show_label=True,
                                   max_new_tokens=args.max_new_tokens, temperature=0.0, chunk_size=len(targets))
        prompts[mode] = build_prompts(targets, prompting, settings)

    spec = model_entry(path=args.model, kind="causal", backend="vllm", dtype="float32", max_model_len=1024,
                       chat_template=True, enforce_eager=True, gpu_memory_utilization=0.3, kv_cache_gb=2,
                       block_size=args.block_size)
    rows = []
    with open_backend(spec, "smollm2") as backend:
        backend.generate([[{"role": "user", "content": "Say hello."}]], max_new_tokens=4)  # start and warm up
        for mode in ("per_example", "fixed"):
            prefix = _shared_prefix_tokens(backend, prompts[mode])
            t0 = time.perf_counter()
            gens = backend.generate(prompts[mode], max_new_tokens=args.max_new_tokens, temperature=0.0, seed=0)
            seconds = time.perf_counter() - t0
            prompt_tokens = sum(g.prompt_tokens for g in gens)
            rows.append({"demonstrations": mode, "n": len(gens), "seconds": round(seconds, 2),
                         "explanations_per_s": round(len(gens) / seconds, 3),
                         "prompt_tokens_mean": round(prompt_tokens / len(gens), 1),
                         "shared_prefix_tokens": prefix,
                         "completion_tokens": sum(g.completion_tokens for g in gens)})
    per, fixed = rows
    result = {"rows": rows, "ratio_fixed_over_per_example": round(fixed["explanations_per_s"] /
                                                                  per["explanations_per_s"], 2),
              "shots": args.shots, "max_new_tokens": args.max_new_tokens, "block_size": args.block_size,
              "model": args.model, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{len(targets)} e-SNLI pairs, {args.shots}-shot, max_new_tokens={args.max_new_tokens}, vLLM with "
          f"prefix caching (block {args.block_size}), greedy ({result['machine']})")
    print(f"{'demonstrations':<16}{'expl/s':>9}{'seconds':>9}{'prompt tok':>12}{'shared prefix':>15}")
    for r in rows:
        print(f"{r['demonstrations']:<16}{r['explanations_per_s']:>9.2f}{r['seconds']:>9.1f}"
              f"{r['prompt_tokens_mean']:>12.1f}{r['shared_prefix_tokens']:>15}")
    print(f"ratio fixed / per_example: {result['ratio_fixed_over_per_example']:.2f}x; written to {out}")


def _shared_prefix_tokens(backend, prompts) -> int:
    """Tokens that every prompt shares at its start (what prefix caching can reuse)."""
    ids = [backend.encode(p) for p in prompts]
    n = 0
    while all(len(s) > n for s in ids) and len({s[n] for s in ids}) == 1:
        n += 1
    return n


if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    main()
