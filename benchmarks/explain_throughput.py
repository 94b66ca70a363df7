"""Explanations per second: vLLM versus transformers ``generate``, same model, same prompts.

One run generates explanations for the same real e-SNLI pairs (k-shot prompts built by
``explainbench.explanations.generate``) with each engine, greedy, and reports explanations/s, tokens/s
and the vLLM/transformers ratio. Engine start-up is timed apart from generation (a warm-up
prompt runs first). Results go to ``benchmarks/results/explain_throughput.{json,csv}``.

    python benchmarks/explain_throughput.py --n 32 --shots 2 --max-new-tokens 48
"""
from __future__ import annotations

import argparse
import csv
import gc
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
    parser.add_argument("--n", type=int, default=32, help="examples to explain")
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "explain_throughput"))
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from explainbench.config import model_entry
    from explainbench.data import load_records
    from explainbench.engines import open_backend
    from explainbench.explanations.generate import ExplainSettings, Prompting, build_prompts
    from explainbench.prompts import load_template

    if not (Path(args.model) / "config.json").exists():
        from explainbench.demo import build_smollm2

        build_smollm2(args.model)
    records = load_records(args.data, format="esnli", labels=LABELS)
    train, examples = records[:500], records[500:500 + args.n]
    template = load_template(ROOT / "config" / "prompts", "explain", "esnli", "nli")
    settings = ExplainSettings(shots=args.shots, seed=0, demonstrations="per_example", show_label=True,
                               max_new_tokens=args.max_new_tokens, temperature=0.0, chunk_size=len(examples))
    prompts = build_prompts(examples, Prompting(template, train, LABELS), settings)

    spec = dict(path=args.model, kind="causal", dtype="float32", max_model_len=1024, chat_template=True,
                enforce_eager=True, gpu_memory_utilization=0.3, kv_cache_gb=2, batch_size=args.batch_size)
    rows, texts = [], {}
    for engine in ("transformers", "vllm"):
        with open_backend(model_entry(**spec, backend=engine), "smollm2") as backend:
            t0 = time.perf_counter()
            backend.generate(prompts[:1], max_new_tokens=4)  # load / start the engine, warm up
            startup = time.perf_counter() - t0
            t0 = time.perf_counter()
            gens = backend.generate(prompts, max_new_tokens=args.max_new_tokens, temperature=0.0, seed=0)
            seconds = time.perf_counter() - t0
        tokens = sum(g.completion_tokens for g in gens)
        texts[engine] = [g.text for g in gens]
        rows.append({"engine": engine, "n": len(gens), "seconds": round(seconds, 3),
                     "explanations_per_s": round(len(gens) / seconds, 3), "tokens_per_s": round(tokens / seconds, 2),
                     "completion_tokens": tokens, "startup_s": round(startup, 1)})
        gc.collect()

    hf, vl = rows
    same = sum(a == b for a, b in zip(texts["transformers"], texts["vllm"]))
    result = {"rows": rows, "ratio_vllm_over_transformers": round(vl["explanations_per_s"] / hf["explanations_per_s"], 3),
              "identical_texts": f"{same}/{len(prompts)}", "shots": args.shots, "max_new_tokens": args.max_new_tokens,
              "model": args.model, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"\nexplanation throughput: {len(prompts)} e-SNLI pairs, {args.shots}-shot, "
          f"max_new_tokens={args.max_new_tokens}, greedy ({result['machine']})")
    print(f"{'engine':<14}{'expl/s':>9}{'tok/s':>9}{'seconds':>9}{'tokens':>8}{'startup s':>11}")
    for r in rows:
        print(f"{r['engine']:<14}{r['explanations_per_s']:>9.2f}{r['tokens_per_s']:>9.1f}{r['seconds']:>9.1f}"
              f"{r['completion_tokens']:>8}{r['startup_s']:>11.1f}")
    print(f"ratio vLLM / transformers: {result['ratio_vllm_over_transformers']:.2f}x "
          f"(identical texts: {result['identical_texts']}); written to {out.with_suffix('.json')}")


if __name__ == "__main__":  # vLLM starts its engine in a spawned process
    main()
