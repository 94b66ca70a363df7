"""Snakemake entry point: write one of the generated demo datasets."""
from explainbench.demo import DEMO_DATA
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    n = DEMO_DATA[snakemake.wildcards.demo_data](snakemake.output.data)
    log.info("wrote %d records to %s", n, snakemake.output.data)
