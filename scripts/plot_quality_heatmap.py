"""Snakemake entry point for rule plot_quality_heatmap: quality table -> one explainer's heat map."""
from explainbench.plots import plot_quality_heatmap
from explainbench.report import read_table
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    table = read_table(snakemake.input.table)
    plot_quality_heatmap(table, snakemake.wildcards.model, snakemake.output.png, snakemake.output.svg,
                         source=snakemake.input.table)
    log.info("quality heat map of %s -> %s", snakemake.wildcards.model, snakemake.output.png)
