"""Snakemake entry point for rule quality_table: corpus.csv of every run -> explanation quality table."""
from explainbench.report import quality_table, write_quality
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    table = quality_table(snakemake.input.corpus, config_hash=snakemake.params.config_hash,
                          model_paths=snakemake.params.model_paths)
    write_quality(table, snakemake.output.csv, snakemake.output.md, snakemake.output.html)
    log.info("explanation quality: %d rows from %d runs -> %s", len(table), len(snakemake.input.corpus), snakemake.output.csv)
