"""Snakemake entry point of rule prepare_data: load, check and split one dataset."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("splits", snakemake)  # noqa: F821 - injected by Snakemake
