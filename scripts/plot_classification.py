"""Snakemake entry point for rule plot_classification: classification table -> one dataset's plot."""
from explainbench.plots import plot_classification
from explainbench.report import read_table
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    table = read_table(snakemake.input.table)
    plot_classification(table, snakemake.wildcards.dataset, snakemake.output.png, snakemake.output.svg,
                        source=snakemake.input.table)
    log.info("classification of %s -> %s", snakemake.wildcards.dataset, snakemake.output.png)
