"""Snakemake entry point of rule plot_classification: one dataset's classification plot."""
from explainbench.workflow import run_script

if __name__ == "__main__":  # engines may start in a spawned process
    run_script("report.plots:run_classification", snakemake)  # noqa: F821 - injected by Snakemake
