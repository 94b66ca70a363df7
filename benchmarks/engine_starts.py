"""Engine starts: every zero-shot and G-Eval job loading SmolLM2 versus one `vllm serve` per dataset.

Two fresh copies of the workflow run the same config side by side, one after the other
(``tests/support/configs.zeroshot_and_judge``: SmolLM2 explains real e-SNLI pairs zero-shot, then
judges its explanations and classifies them under three conditions in every fold): the baseline
with ``serve: false`` (each job starts its own vLLM engine), the candidate with ``serve: true``
(rule serve_llm). Reported: engine starts per rule (from the jobs' logs), the wall time of the
zero-shot + G-Eval work (the baseline: the sum of its jobs' times from Snakemake's ``benchmark:``
files; the candidate: the serve_llm job's, which spans its group) and of the whole run, and the
ratios. Results go to ``benchmarks/results/engine_starts.json``.

    python benchmarks/engine_starts.py --per-class 8 --folds 2
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the dev tooling in tests/support

from support.configs import zeroshot_and_judge  # noqa: E402
from support.ops import copy_workflow, engine_starts, link_models, run_snakemake  # noqa: E402

WORK_RULES = ("zeroshot", "score_explanations", "serve_llm")


def job_seconds(root: Path) -> dict[str, float]:
    """Wall seconds per rule, summed over its jobs' ``benchmark:`` files."""
    seconds: dict[str, float] = {}
    for rule in WORK_RULES:
        for tsv in (root / "benchmarks" / "results" / rule).rglob("*.tsv"):
            with open(tsv) as f:
                seconds[rule] = seconds.get(rule, 0.0) + float(next(csv.DictReader(f, delimiter="\t"))["s"])
    return seconds


def run_once(work: Path, serve: bool, args) -> dict:
    root = link_models(copy_workflow(work), args.models / "SmolLM2-135M-Instruct", args.models / "all-MiniLM-L6-v2")
    default = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config = zeroshot_and_judge(default, per_class=args.per_class, folds=args.folds, serve=serve)
    (root / "config" / "bench.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    t0 = time.time()
    proc = run_snakemake(root, ["--cores", str(args.cores), "--configfile", "config/bench.yaml"], timeout=4 * 3600)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the {'served' if serve else 'per-job'} run failed:\n{proc.stdout[-4000:]}")
    seconds = job_seconds(root)
    work_s = seconds.get("serve_llm", 0.0) if serve else seconds.get("zeroshot", 0.0) + seconds.get("score_explanations", 0.0)
    return {"serve": serve, "engine_starts": engine_starts(root), "run_s": round(wall, 1),
            "zeroshot_and_geval_s": round(work_s, 1), "job_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=8, help="e-SNLI pairs a label")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine_starts.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_once(Path(tmp) / ("served" if serve else "per_job"), serve, args) for serve in (False, True)]
    base, cand = rows
    result = {"machine": f"{platform.machine()}, {platform.processor() or '?'}", "per_class": args.per_class,
              "folds": args.folds, "runs": rows,
              "speedup_zeroshot_and_geval": round(base["zeroshot_and_geval_s"] / cand["zeroshot_and_geval_s"], 2),
              "speedup_run": round(base["run_s"] / cand["run_s"], 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"serve={row['serve']!s:5}  engine starts {row['engine_starts']}  zero-shot + G-Eval "
              f"{row['zeroshot_and_geval_s']:.0f} s  whole run {row['run_s']:.0f} s")
    print(f"per-job / served: zero-shot + G-Eval x{result['speedup_zeroshot_and_geval']}, whole run "
          f"x{result['speedup_run']}")


if __name__ == "__main__":
    main()
