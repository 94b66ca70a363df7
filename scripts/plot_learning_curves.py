"""Snakemake entry point for rule plot_learning_curves: PLR table -> one dataset's learning curves."""
from explainbench.plots import plot_learning_curves
from explainbench.report import read_table
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    table = read_table(snakemake.input.table)
    plot_learning_curves(table, snakemake.wildcards.dataset, snakemake.output.png, snakemake.output.svg,
                         source=snakemake.input.table)
    log.info("learning curves of %s -> %s", snakemake.wildcards.dataset, snakemake.output.png)
