"""Snakemake entry point: load, check and split one dataset."""
from explainbench.data import write_json, write_jsonl
from explainbench.splits import prepare_dataset, split_summary
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    splits = prepare_dataset(snakemake.params.spec, snakemake.wildcards.dataset)
    for name, rows in splits.items():
        write_jsonl(rows, snakemake.output[name])
    summary = split_summary(splits)
    write_json(summary, snakemake.output.summary)
    log.info("%s: %s", snakemake.wildcards.dataset, summary)
