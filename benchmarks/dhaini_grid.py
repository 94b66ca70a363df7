"""Study 1's fine-tuning grid at the study's full size, through the finetune rule's own code.

config/dhaini.yaml's e-SNLI part is 840 pairs x 5 official folds x (none, human and 8 LLM
explanations) = 50 fine-tuning runs per set of hyper-parameters. On a 2-core CPU that is hours;
on one GPU it is minutes. This script runs exactly the jobs rule ``finetune`` would run
(:func:`explainbench.classify.finetune.run` on the same :class:`explainbench.workflow.Job`),
without Snakemake, so the grid can run on a machine that has torch and transformers but no
workflow install (a lent GPU), and the table is then made here with the report's own code.

    # 1. here: the workflow's examples and explanation files must exist (rules prepare_data, explain)
    python benchmarks/dhaini_grid.py prepare --workdir RUN --configfile config/full.yaml \
        --encoder minilm --dest .grid --encoder-path .grid/encoder
    # 2. anywhere with torch + transformers (CPU or GPU); resumes: finished runs are skipped
    PYTHONPATH=src python benchmarks/dhaini_grid.py train --dest .grid --out OUT
    # 3. here: the classification table per settings profile, from OUT's runs
    python benchmarks/dhaini_grid.py table --out OUT

Profiles: ``official`` is the config's finetune section (the official code's 1 epoch, lr 1e-5,
batch 8); ``tuned`` overrides epochs / lr / batch with values under which a small encoder learns
(``--tuned 3,5e-5,16``: the values the issue measured by hand on fold 0).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path


def _prepare(args) -> None:
    import yaml

    from explainbench.config import validate_config
    from explainbench.workflow import fold_list, parse_condition, stage_conditions

    work = Path(args.workdir)
    config = validate_config(yaml.safe_load((work / args.configfile).read_text()))
    dest = Path(args.dest)
    (dest / "data").mkdir(parents=True, exist_ok=True)
    epochs, lr, batch = args.tuned.split(",")
    overrides = {"official": {}, "tuned": {"epochs": float(epochs), "learning_rate": float(lr),
                                           "batch_size": int(batch)}}
    configs = {}  # profile -> the config its jobs see: the encoder where `train` runs, its finetune values
    for profile, values in overrides.items():
        configs[profile] = json.loads(json.dumps(config))
        configs[profile]["finetune"].update(values)
        configs[profile]["models"][args.encoder]["path"] = args.encoder_path
    jobs = []
    for dataset in config["finetune"]["datasets"]:
        examples = dest / "data" / dataset / "examples.jsonl"
        examples.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "results" / "data" / dataset / "examples.jsonl", examples)
        for condition in stage_conditions(config, "finetune", dataset):
            explanations = []
            if condition not in ("none", "human"):
                model, shots = parse_condition(condition)  # the first explain seed's file, as rule finetune reads
                source = (work / "results" / "explanations" / dataset / model / f"{shots}shot"
                          / f"seed{config['explain']['seeds'][0]}" / "explanations.jsonl")
                target = dest / "data" / dataset / condition / "explanations.jsonl"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                explanations = [str(target)]
            for profile in configs:
                for fold in fold_list(config, dataset):
                    for seed in config["finetune"]["seeds"]:
                        jobs.append({"run": f"{profile}/{dataset}/fold{fold}/{args.encoder}/{condition}/seed{seed}",
                                     "profile": profile,
                                     "input": {"examples": str(examples), "explanations": explanations},
                                     "wildcards": {"dataset": dataset, "fold": str(fold), "model": args.encoder,
                                                   "condition": condition, "seed": str(seed)}})
    (dest / "jobs.json").write_text(json.dumps({"configs": configs, "jobs": jobs}))
    print(f"{len(jobs)} jobs in {dest / 'jobs.json'}")


def _train(args) -> None:
    import torch

    from explainbench.classify import finetune
    from explainbench.workflow import Job, rule_settings

    plan = json.loads((Path(args.dest) / "jobs.json").read_text())
    configs, jobs = plan["configs"], plan["jobs"]
    settings = {profile: rule_settings(cfg, "finetune") for profile, cfg in configs.items()}
    out = Path(args.out)
    threads = args.threads or torch.get_num_threads()
    t0 = time.time()
    for i, spec in enumerate(jobs, 1):
        run_dir = out / "runs" / spec["run"]
        output = {"metrics": str(run_dir / "metrics.json"), "predictions": str(run_dir / "predictions.csv")}
        if Path(output["metrics"]).exists():
            continue
        job = Job(input=spec["input"], output=output, config=configs[spec["profile"]], wildcards=spec["wildcards"],
                  settings=settings[spec["profile"]], threads=threads, rule="finetune")
        metrics = finetune.run(job)
        print(f"[{i}/{len(jobs)}] {spec['run']}: macro-F1 {metrics['macro_f1']:.3f} "
              f"({metrics['training']['seconds']:.0f}s on {metrics['training']['device']}; {time.time() - t0:.0f}s in all)",
              flush=True)


def _table(args) -> None:
    from explainbench.report.classification import classification_table

    out = Path(args.out)
    for profile in sorted(p.name for p in (out / "runs").iterdir()):
        runs = [(m, m.with_name("predictions.csv")) for m in sorted((out / "runs" / profile).rglob("metrics.json"))]
        table = classification_table(runs, config_hash=profile, bootstrap=args.bootstrap)
        table.to_csv(out / f"classification_{profile}.csv", index=False)
        wide = table.pivot_table(index="fold", columns="condition", values="macro_f1")
        print(f"\n## {profile}: {len(runs)} runs\nmacro-F1 per fold:\n{wide.round(3).to_string()}")
        summary = table.drop_duplicates("condition").set_index("condition")
        print(summary[["macro_f1_mean", "macro_f1_sd", "accuracy_mean", "pooled_diff_macro_f1_vs_none",
                       "pooled_diff_macro_f1_ci_low", "pooled_diff_macro_f1_ci_high",
                       "folds_better_than_none"]].round(3).to_string())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--workdir", required=True)
    p.add_argument("--configfile", required=True)
    p.add_argument("--encoder", required=True, help="the config's model name of the encoder")
    p.add_argument("--encoder-path", required=True, help="where the encoder's folder is where `train` runs")
    p.add_argument("--dest", required=True)
    p.add_argument("--tuned", default="3,5e-5,16", help="epochs,learning_rate,batch_size of profile 'tuned'")
    t = sub.add_parser("train")
    t.add_argument("--dest", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--threads", type=int, default=0)
    r = sub.add_parser("table")
    r.add_argument("--out", required=True)
    r.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    {"prepare": _prepare, "train": _train, "table": _table}[args.command](args)


if __name__ == "__main__":
    main()
