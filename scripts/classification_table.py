"""Snakemake entry point for rule classification_table: metrics.json + predictions.csv of every
fine-tuning and zero-shot run -> classification table by explanation condition."""
from explainbench.report import classification_table, write_classification
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    runs = list(snakemake.input.finetune) + list(snakemake.input.zeroshot)
    table = classification_table(runs, config_hash=snakemake.params.config_hash, n_boot=snakemake.params.bootstrap)
    write_classification(table, snakemake.output.csv, snakemake.output.md, snakemake.output.html)
    log.info("classification: %d rows from %d runs -> %s", len(table), len(runs), snakemake.output.csv)
