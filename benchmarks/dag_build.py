"""How long Snakemake takes to build the DAG of the paper grid, and of a grid ten times larger.

    python benchmarks/dag_build.py [--repeats 3] [--scale 10] [--out benchmarks/results/dag_build.json]

Baseline: `snakemake -n` on config/paper.yaml (the papers' full grid, models by hub id); when
that file is not in the repository yet, a paper-like grid is generated (see `paper_like_config`).
Candidate: the same grid with every dataset replicated `--scale` times (about ten times the
jobs). A third, near-empty run (one data target) measures the fixed cost (interpreter start,
imports, parsing the workflow) so the DAG's own cost can be read apart from it. Each run is a
fresh process in a copy of the workflow with no outputs; the median of `--repeats` runs is kept.
Prints and writes jobs, seconds, seconds per 1,000 jobs and the growth ratios.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the dev tooling in tests/support

from support.ops import copy_workflow, run_snakemake  # noqa: E402

LLMS = {  # Dhaini et al. 2025 explainers / zero-shot classifiers, Buckmann & Hill 2024 embedders
    "mixtral_8x7b": ("mistralai/Mixtral-8x7B-Instruct-v0.1", 2),
    "gemma2_9b": ("google/gemma-2-9b-it", 1),
    "llama3_8b": ("meta-llama/Meta-Llama-3-8B-Instruct", 1),
    "llama3_70b": ("meta-llama/Meta-Llama-3-70B-Instruct", 4),
    "qwen2_7b": ("Qwen/Qwen2-7B-Instruct", 1),
}
ENCODERS = {
    "bert": "google-bert/bert-base-uncased",
    "deberta": "microsoft/deberta-v3-base",
    "roberta": "FacebookAI/roberta-base",
    "modernbert": "answerdotai/ModernBERT-base",
}
PLR_DATASETS = {  # hub id, labels
    "sst2": ("stanfordnlp/sst2", ["negative", "positive"]),
    "rotten_tomatoes": ("cornell-movie-review-data/rotten_tomatoes", ["negative", "positive"]),
    "imdb": ("stanfordnlp/imdb", ["negative", "positive"]),
    "ag_news": ("fancyzhx/ag_news", ["world", "sports", "business", "sci_tech"]),
    "emotion": ("dair-ai/emotion", ["sadness", "joy", "love", "anger", "fear", "surprise"]),
    "financial_phrasebank": ("takala/financial_phrasebank", ["negative", "neutral", "positive"]),
}


def paper_like_config() -> dict:
    """Both papers' grids: 2 NLI datasets x 5 LLM explainers x 3 shot counts x 3 seeds; 4 encoders
    x 3 seeds x (none, human, 15 LLM conditions); 5 zero-shot LLMs; PLR on 6 datasets x 6 models."""
    models = {name: {"path": hub, "kind": "causal", "backend": "vllm", "dtype": "bfloat16",
                     "tensor_parallel_size": tp, "max_model_len": 4096} for name, (hub, tp) in LLMS.items()}
    models.update({name: {"path": hub, "kind": "encoder", "backend": "transformers"} for name, hub in ENCODERS.items()})
    datasets = {
        "esnli": {"format": "hub", "path": "esnli/esnli", "hub_split": "test", "task": "nli",
                  "labels": ["entailment", "neutral", "contradiction"],
                  "columns": {"explanations": ["explanation_1", "explanation_2", "explanation_3"]}},
        "healthfc": {"format": "healthfc", "path": "data/healthfc/Datensatz.csv", "task": "nli",
                     "labels": ["supported", "not enough information", "refuted"]},
    }
    datasets.update({name: {"format": "hub", "path": hub, "task": "classification", "labels": labels}
                     for name, (hub, labels) in PLR_DATASETS.items()})
    llms = list(LLMS)
    return {
        "datasets": datasets,
        "models": models,
        "explain": {"datasets": ["esnli", "healthfc"], "explainers": llms, "shots": [0, 2, 4], "seeds": [0, 1, 2]},
        "quality": {"judge": "llama3_70b", "bertscore": {"model": "roberta"}, "mauve": {"model": "roberta"}},
        "finetune": {"datasets": ["esnli", "healthfc"], "encoders": list(ENCODERS), "seeds": [0, 1, 2]},
        "zeroshot": {"datasets": ["esnli", "healthfc"], "classifiers": llms},
        "plr": {"datasets": list(PLR_DATASETS), "models": llms + ["roberta"], "zeroshot_models": ["llama3_70b"]},
        "slurm": {"gpu_rules_use_gpus": True},
    }


def scaled(config: dict, factor: int) -> dict:
    """The same grid with every dataset replicated ``factor`` times (name_r0 .. name_r{factor-1})."""
    out = copy.deepcopy(config)
    out["datasets"] = {f"{name}_r{i}": spec for name, spec in config["datasets"].items() for i in range(factor)}

    def rep(names):
        return [f"{n}_r{i}" for n in names for i in range(factor)]

    for section in ("explain", "finetune", "zeroshot", "plr"):
        if section in out and "datasets" in out[section]:
            out[section]["datasets"] = rep(config[section]["datasets"])
    verbalizers = config.get("zeroshot", {}).get("verbalizers")
    if verbalizers:
        out["zeroshot"]["verbalizers"] = {f"{n}_r{i}": v for n, v in verbalizers.items() for i in range(factor)}
    return out


def time_dry_run(workdir: Path, configfile: str, targets: list[str], repeats: int) -> tuple[float, int, list[float]]:
    seconds, jobs = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        proc = run_snakemake(workdir, [*targets, "-n", "--cores", "1", "--quiet", "rules",
                                       "--configfile", configfile], timeout=3600)
        seconds.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"dry-run failed ({configfile}):\n{proc.stdout[-4000:]}")
        match = re.search(r"^total\s+(\d+)\s*$", proc.stdout, re.M)
        jobs = int(match.group(1)) if match else 0
    return statistics.median(seconds), jobs, seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dag_build.json"))
    args = parser.parse_args(argv)

    paper = ROOT / "config" / "paper.yaml"
    base = yaml.safe_load(paper.read_text()) if paper.exists() else paper_like_config()
    source = "config/paper.yaml" if paper.exists() else "generated paper-like grid (config/paper.yaml not found)"
    with tempfile.TemporaryDirectory(prefix="dag_build_") as tmp:
        workdir = copy_workflow(Path(tmp) / "repo")
        (workdir / "config" / "bench_paper.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
        (workdir / "config" / "bench_scaled.yaml").write_text(yaml.safe_dump(scaled(base, args.scale), sort_keys=False))
        fixed, fixed_jobs, fixed_all = time_dry_run(workdir, "config/config.yaml", ["resources/demo/demo_nli.jsonl"], args.repeats)
        t1, n1, all1 = time_dry_run(workdir, "config/bench_paper.yaml", [], args.repeats)
        t10, n10, all10 = time_dry_run(workdir, "config/bench_scaled.yaml", [], args.repeats)

    dag1, dag10 = max(t1 - fixed, 1e-9), max(t10 - fixed, 1e-9)
    result = {
        "grid": source,
        "scale": args.scale,
        "repeats": args.repeats,
        "fixed_cost": {"jobs": fixed_jobs, "seconds": round(fixed, 2), "runs": [round(s, 2) for s in fixed_all]},
        "paper": {"jobs": n1, "seconds": round(t1, 2), "dag_seconds": round(dag1, 2),
                  "ms_per_job": round(1000 * dag1 / n1, 2), "runs": [round(s, 2) for s in all1]},
        "scaled": {"jobs": n10, "seconds": round(t10, 2), "dag_seconds": round(dag10, 2),
                   "ms_per_job": round(1000 * dag10 / n10, 2), "runs": [round(s, 2) for s in all10]},
        "ratios": {"jobs": round(n10 / n1, 2), "seconds": round(t10 / t1, 2), "dag_seconds": round(dag10 / dag1, 2),
                   "ms_per_job": round((dag10 / n10) / (dag1 / n1), 2)},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"grid: {source}")
    print(f"fixed cost (1-job dry-run): {fixed:.1f} s")
    print(f"paper grid:   {n1:6d} jobs  {t1:7.1f} s  (DAG {dag1:6.1f} s, {1000 * dag1 / n1:.1f} ms/job)")
    print(f"{args.scale:>2}x grid:     {n10:6d} jobs  {t10:7.1f} s  (DAG {dag10:6.1f} s, {1000 * dag10 / n10:.1f} ms/job)")
    print(f"growth: jobs x{n10 / n1:.1f}, wall time x{t10 / t1:.1f}, DAG time x{dag10 / dag1:.1f}, "
          f"per-job cost x{(dag10 / n10) / (dag1 / n1):.2f}")
    print(f"written to {out}")
    return result


if __name__ == "__main__":
    main()
