"""Each engine path's rate next to the machine's bound, measured in the same run.

Paths, on real e-SNLI pairs, as the pipeline's rules call them:

- generation (rule explain): vLLM writes 0-shot explanations (greedy, ``--max-new-tokens``);
- label scoring (rules zeroshot, score_explanations): vLLM and transformers ``label_logprobs``
  on the zero-shot prompts (three label words, " entailment" two tokens);
- embeddings (rule embed): SmolLM2 through vLLM's pooling runner (prompt-wrapped pairs, last
  token) and all-MiniLM-L6-v2 through transformers (mean pooling).

The bound of a path is torch's matmul GFLOP/s (measured at the start and the end of the run,
averaged) over the forward FLOPs of the path's least work: every prompt token once, every
generated token once (attending over its context), the LM-head rows the path needs
(``benchmarks/bounds.py``). The table gives items/s, tokens/s and the rate as a percentage of
the bound. Engine start-up is timed apart. Results go to ``benchmarks/results/engine_paths.json``.

    python benchmarks/engine_paths.py --n 96 --max-new-tokens 32
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
MODELS = ROOT / "resources" / "models"


def _records(data: str, n: int):
    from explainbench.data import load_records
    from explainbench.splits import sample_per_class

    return sample_per_class(load_records(data, format="esnli", labels=LABELS), -(-n // 3), 0)[:n]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def generation(backend, cost, records, max_new_tokens):
    from explainbench.explanations.generate import ExplainSettings, Prompting, build_prompts
    from explainbench.prompts import load_template

    template = load_template(ROOT / "config" / "prompts", "explain", "esnli", "nli")
    settings = ExplainSettings(shots=0, seed=0, demonstrations="fixed", show_label=True,
                               max_new_tokens=max_new_tokens, temperature=0.0, chunk_size=len(records))
    prompts = build_prompts(records, Prompting(template, [], LABELS), settings)
    backend.generate(prompts[:2], max_new_tokens=4)  # start, warm up
    backend._engine("generate").reset_prefix_cache()
    seconds, gens = _timed(lambda: backend.generate(prompts, max_new_tokens=max_new_tokens, seed=0))
    flops = sum(cost.sequence_flops(g.prompt_tokens, lm_head_rows=1)
                + cost.sequence_flops(g.completion_tokens - 1, lm_head_rows=g.completion_tokens - 1, past=g.prompt_tokens)
                for g in gens)
    tokens = sum(g.prompt_tokens + g.completion_tokens for g in gens)
    return {"path": "generation", "engine": "vllm", "model": cost.name, "items": len(gens), "unit": "explanations",
            "seconds": seconds, "tokens": tokens, "flops": flops,
            "completion_tokens": sum(g.completion_tokens for g in gens)}


def label_scoring(backend, cost, records):
    from label_scoring import least_flops, zeroshot_prompts

    prompts, options = zeroshot_prompts(backend, DATA, len(records))
    backend.label_logprobs(prompts[:2], options)  # start, warm up
    if backend.spec["backend"] == "vllm":
        backend._engine("generate").reset_prefix_cache()
    seconds, _ = _timed(lambda: backend.label_logprobs(prompts, options))
    return {"path": "label scoring", "engine": backend.spec["backend"], "model": cost.name, "items": len(prompts),
            "unit": "pairs", "seconds": seconds, "tokens": sum(len(backend.encode(p)) for p in prompts),
            "flops": least_flops(backend, cost, prompts, options)}


def embeddings(backend, cost, records, causal):
    from explainbench.data import input_text
    from explainbench.plr.embed import wrap_record
    from explainbench.prompts import load_template

    if causal:  # rule embed's prompt-wrapped pair, the last token's state
        template = load_template(ROOT / "config" / "prompts", "embed", "esnli", "nli")
        texts = [wrap_record(r, template, LABELS) for r in records]
        pooling = "last"
    else:
        texts = [input_text(r) for r in records]
        pooling = "mean"
    backend.embed(texts[:2], pooling=pooling)  # start, warm up
    seconds, _ = _timed(lambda: backend.embed(texts, pooling=pooling))
    if causal:
        lengths = [len(backend.encode(t)) for t in texts]
    else:
        lengths = [len(ids) for ids in backend.tokenizer(texts)["input_ids"]]
    return {"path": "embeddings", "engine": backend.spec["backend"], "model": cost.name, "items": len(texts),
            "unit": "texts", "seconds": seconds, "tokens": sum(lengths),
            "flops": sum(cost.sequence_flops(n) for n in lengths)}


DATA = str(ROOT.parent / "shared" / "data" / "esnli" / "dev.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=96, help="e-SNLI pairs per path")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine_paths.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bounds import ModelCost, load_line, matmul_gflops
    from conftest import causal_spec, encoder_spec
    from explainbench.engines import open_backend

    smollm2, minilm = MODELS / "SmolLM2-135M-Instruct", MODELS / "all-MiniLM-L6-v2"
    lm_cost, enc_cost = ModelCost.of(str(smollm2)), ModelCost.of(str(minilm), causal=False)
    records = _records(DATA, args.n)
    load_before, gflops_before = load_line(), matmul_gflops()
    rows = []
    with open_backend(causal_spec(smollm2, backend="vllm"), "smollm2") as backend:
        rows.append(generation(backend, lm_cost, records, args.max_new_tokens))
        rows.append(label_scoring(backend, lm_cost, records))
        rows.append(embeddings(backend, lm_cost, records, causal=True))
    with open_backend(causal_spec(smollm2, backend="transformers"), "smollm2") as backend:
        rows.append(label_scoring(backend, lm_cost, records))
    with open_backend(encoder_spec(minilm), "minilm") as backend:
        rows.append(embeddings(backend, enc_cost, records, causal=False))
    gflops = (gflops_before + matmul_gflops()) / 2
    for row in rows:
        bound = gflops * 1e9 * row["items"] / row["flops"]
        row.update(items_per_s=round(row["items"] / row["seconds"], 2), tokens_per_s=round(row["tokens"] / row["seconds"], 1),
                   bound_items_per_s=round(bound, 2), pct_of_bound=round(100 * row["items"] / row["seconds"] / bound, 1),
                   gflop_per_item=round(row["flops"] / row["items"] / 1e9, 2), seconds=round(row["seconds"], 2))
        del row["flops"]
    result = {"rows": rows, "matmul_gflops": round(gflops, 1),
              "flops_per_token": {lm_cost.name: lm_cost.token_flops(0), enc_cost.name: enc_cost.token_flops(0)},
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs; at start {load_before}, at end {load_line()}",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nengine paths on {args.n} e-SNLI pairs; matmul {result['matmul_gflops']} GFLOP/s ({result['machine']})")
    print(f"{'path':<15}{'engine':<14}{'model':<24}{'items/s':>9}{'tok/s':>9}{'GFLOP/item':>11}{'bound/s':>9}{'% bound':>9}")
    for r in rows:
        print(f"{r['path']:<15}{r['engine']:<14}{r['model']:<24}{r['items_per_s']:>9.2f}{r['tokens_per_s']:>9.1f}"
              f"{r['gflop_per_item']:>11.2f}{r['bound_items_per_s']:>9.2f}{r['pct_of_bound']:>9.1f}")
    print(f"written to {out}")


if __name__ == "__main__":  # vLLM may start its engine in a spawned process
    main()
